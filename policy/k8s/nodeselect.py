"""Evaluating a core/v1 NodeSelector against a node's name and labels (no API access needed)."""

from __future__ import annotations

from collections.abc import Mapping

from gpupolicy.policy.k8s.meta import NodeSelector, NodeSelectorRequirement, NodeSelectorTerm


def node_selector_matches(selector: NodeSelector, node_name: str, labels: Mapping[str, str]) -> bool:
    """Terms are ORed; within a term every requirement must hold. No terms match nothing."""
    return any(_term_matches(term, node_name, labels) for term in selector.node_selector_terms)


def _term_matches(term: NodeSelectorTerm, node_name: str, labels: Mapping[str, str]) -> bool:
    expressions, fields = term.match_expressions or [], term.match_fields or []
    if not expressions and not fields:
        return False  # an empty term matches no objects
    fields_view = {"metadata.name": node_name}
    return all(_requirement_matches(r, labels) for r in expressions) and all(
        _requirement_matches(r, fields_view) for r in fields
    )


def _requirement_matches(req: NodeSelectorRequirement, labels: Mapping[str, str]) -> bool:
    values = req.values or []
    present = req.key in labels
    value = labels.get(req.key, "")
    if req.operator == "In":
        return present and value in values
    if req.operator == "NotIn":
        return not present or value not in values
    if req.operator == "Exists":
        return present
    if req.operator == "DoesNotExist":
        return not present
    if not present or len(values) != 1:
        return False
    try:
        have, want = int(value), int(values[0])
    except ValueError:
        return False
    return have > want if req.operator == "Gt" else have < want
