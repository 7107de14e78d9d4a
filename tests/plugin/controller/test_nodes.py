"""Which nodes a gated pod can run on: what the scheduler would check besides DRA."""

from __future__ import annotations

from typing import Any

from gpupolicy.plugin.controller.nodes import allowed_nodes


def node(name: str, labels: dict[str, str] | None = None, **spec: Any) -> tuple[str, dict[str, Any]]:
    return name, {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


NODES = dict(
    [
        node("a", {"zone": "z1", "gpu": "h100"}),
        node("b", {"zone": "z2", "gpu": "h100"}, taints=[{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}]),
        node("c", {"zone": "z2", "gpu": "a100"}, unschedulable=True),
        node("d", {"zone": "z3"}, taints=[{"key": "soft", "effect": "PreferNoSchedule"}]),
    ]
)


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "n"}, "spec": spec}


def test_taints_and_unschedulable_nodes_are_avoided_without_tolerations() -> None:
    assert allowed_nodes(pod(), NODES) == {"a", "d"}  # PreferNoSchedule does not block


def test_tolerations_match_like_kubernetes() -> None:
    equal = {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    assert allowed_nodes(pod(tolerations=[equal]), NODES) == {"a", "b", "d"}
    assert allowed_nodes(pod(tolerations=[{**equal, "value": "web"}]), NODES) == {"a", "d"}
    assert allowed_nodes(pod(tolerations=[{"key": "dedicated", "operator": "Exists"}]), NODES) == {"a", "b", "d"}
    assert allowed_nodes(pod(tolerations=[{"operator": "Exists"}]), NODES) == {"a", "b", "c", "d"}
    assert allowed_nodes(pod(tolerations=[{"operator": "Exists", "effect": "NoExecute"}]), NODES) == {"a", "d"}


def test_required_node_affinity_terms_are_ored() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100"]}]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["d"]}]},
                ]
            }
        }
    }
    assert allowed_nodes(pod(affinity=affinity, tolerations=[{"operator": "Exists"}]), NODES) == {"a", "b", "d"}


def test_node_selector_and_name_still_apply() -> None:
    assert allowed_nodes(pod(nodeSelector={"zone": "z2"}, tolerations=[{"operator": "Exists"}]), NODES) == {"b", "c"}
    assert allowed_nodes(pod(nodeName="d"), NODES) == {"d"}


def test_unrestricted_pod_on_untainted_nodes_is_not_restricted() -> None:
    assert allowed_nodes(pod(), dict([node("a"), node("b")])) is None
