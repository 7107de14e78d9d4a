"""What preemption and defragmentation read from the cluster, as the solver's values: the pods bound to nodes
(:class:`~gpupolicy.solver.evictions.PodInfo`) and the PodDisruptionBudgets
(:class:`~gpupolicy.solver.evictions.BudgetInfo`).

A budget's ``allowed`` is what the Eviction API would allow now: ``status.disruptionsAllowed``, or 0 while the
disruption controller has not observed the budget's latest generation (the API server answers 429 then, too).
A selector with an operator the API server would not admit is read as selecting every pod of its namespace
with nothing allowed: such a budget protects too much rather than too little.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpupolicy.plugin.kube import Obj
from gpupolicy.solver.evictions import BudgetInfo, PodInfo, Requirement

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def pod_info(pod: Obj) -> PodInfo:
    meta: Mapping[str, Any] = pod.get("metadata") or {}
    spec: Mapping[str, Any] = pod.get("spec") or {}
    owners = meta.get("ownerReferences") or []
    return PodInfo(
        namespace=str(meta.get("namespace", "default")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        node=str(spec.get("nodeName") or ""),
        phase=str((pod.get("status") or {}).get("phase") or "Pending"),
        deleting=bool(meta.get("deletionTimestamp")),
        controlled=any(o.get("controller") for o in owners if isinstance(o, dict)),
    )


def budget_info(budget: Obj) -> BudgetInfo:
    meta: Mapping[str, Any] = budget.get("metadata") or {}
    selector: Mapping[str, Any] = (budget.get("spec") or {}).get("selector") or {}
    status: Mapping[str, Any] = budget.get("status") or {}
    observed = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 1)
    allowed = int(status.get("disruptionsAllowed") or 0) if observed else 0
    requirements = []
    for expr in selector.get("matchExpressions") or []:
        operator = str(expr.get("operator", ""))
        if operator not in OPERATORS:  # the API server refuses these; never let such a budget protect nothing
            return BudgetInfo(str(meta.get("namespace", "default")), str(meta.get("name", "")), allowed=0)
        requirements.append(Requirement(str(expr.get("key", "")), operator, tuple(expr.get("values") or ())))
    return BudgetInfo(
        namespace=str(meta.get("namespace", "default")),
        name=str(meta.get("name", "")),
        match_labels=dict(selector.get("matchLabels") or {}),
        match_expressions=tuple(requirements),
        allowed=max(0, allowed),
    )
