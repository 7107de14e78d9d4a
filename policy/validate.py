"""Validate one file of mixed objects: policies, cluster descriptions and Kubernetes objects.

Each document is checked by the loader of its kind; Kubernetes objects additionally get their CEL
selectors compiled (:mod:`gpupolicy.policy.objcheck`). All problems are returned, none raised.
"""

from __future__ import annotations

from gpupolicy.policy.cluster import KIND as CLUSTER_KIND
from gpupolicy.policy.cluster import load_cluster_doc
from gpupolicy.policy.errors import Diagnostic, DiagnosticError
from gpupolicy.policy.k8s.load import load_objects
from gpupolicy.policy.objcheck import check_selectors
from gpupolicy.policy.policyfile.compile import compile_doc
from gpupolicy.policy.policyfile.model import KIND as POLICY_KIND
from gpupolicy.policy.yamlsrc import SourceDoc, parse_yaml


def _own_kind(doc: SourceDoc) -> list[Diagnostic]:
    try:
        if doc.kind == POLICY_KIND:
            compile_doc(doc)
        else:
            load_cluster_doc(doc)
    except DiagnosticError as exc:
        return list(exc.diagnostics)
    return []


def validate_text(text: str, filename: str) -> tuple[int, list[Diagnostic]]:
    """(number of objects read, every problem found) for one file's text."""
    try:
        docs = parse_yaml(text, filename)
    except DiagnosticError as exc:
        return 0, list(exc.diagnostics)
    problems: list[Diagnostic] = []
    kube: list[SourceDoc] = []
    for doc in docs:
        if doc.kind in (POLICY_KIND, CLUSTER_KIND):
            problems += _own_kind(doc)
        else:
            kube.append(doc)
            problems += check_selectors(doc)
    problems += load_objects(kube).diagnostics
    return len(docs), problems
