"""Who holds the allocated claims: bound Pods and PodDisruptionBudgets read into the values
:func:`gpupolicy.solver.evictions.build_evictions` takes.

A Pod is *bound* when it has a node (``spec.nodeName``) or has run (``status.phase`` Running, Succeeded or
Failed): it holds claims rather than asking for them, so its claims are not generated or placed.
"""

from __future__ import annotations

from gpupolicy.policy.k8s.pdb import PodDisruptionBudget
from gpupolicy.policy.k8s.pod import Pod
from gpupolicy.solver.evictions import BudgetInfo, PodInfo, Requirement

RAN = ("Running", "Succeeded", "Failed")


def is_bound(pod: Pod) -> bool:
    phase = pod.status.phase if pod.status else None
    return bool(pod.spec.node_name) or phase in RAN


def pod_info(pod: Pod) -> PodInfo:
    meta = pod.metadata
    phase = (pod.status.phase if pod.status else None) or "Pending"
    return PodInfo(
        namespace=meta.namespace_or_default,
        name=meta.name or "",
        uid=meta.uid or "",
        labels=dict(meta.labels or {}),
        annotations=dict(meta.annotations or {}),
        node=pod.spec.node_name or "",
        phase=phase,
        deleting=meta.deletion_timestamp is not None,
        controlled=any(ref.controller for ref in meta.owner_references or ()),
    )


def budget_info(pdb: PodDisruptionBudget) -> BudgetInfo:
    """The budget's selector and what it allows: ``status.disruptionsAllowed`` when written and current;
    0 while the status is older than the spec (the Eviction API refuses then); computed from the spec when
    there is no status."""
    meta, spec, status = pdb.metadata, pdb.spec, pdb.status
    allowed: int | None = None
    if status is not None and status.disruptions_allowed is not None:
        stale = (status.observed_generation or 0) < (meta.generation or 0)
        allowed = 0 if stale else status.disruptions_allowed
    selector = spec.selector
    return BudgetInfo(
        namespace=meta.namespace_or_default,
        name=meta.name or "",
        match_labels=dict(selector.match_labels or {}) if selector else {},
        match_expressions=tuple(
            Requirement(r.key, r.operator, tuple(r.values or ())) for r in (selector.match_expressions or ())
        )
        if selector
        else (),
        allowed=allowed,
        selector=selector is not None,
        min_available=spec.min_available,
        max_unavailable=spec.max_unavailable,
    )
