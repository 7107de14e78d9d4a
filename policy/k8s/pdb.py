"""PodDisruptionBudget (``policy/v1``): what a solve that evicts pods must respect.

Only what the eviction decision reads is modelled (the selector, ``minAvailable``/``maxUnavailable``,
``unhealthyPodEvictionPolicy`` and the status the disruption controller writes); it is strict like the DRA kinds,
so a misspelt field is an error rather than a budget silently read as empty. The API server's rules are checked
in :func:`check_pod_disruption_budget` (``ValidatePodDisruptionBudget`` in ``pkg/apis/policy/validation``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator

from gpupolicy.policy.k8s import names
from gpupolicy.policy.k8s.base import Int, K8sModel, Str, Time
from gpupolicy.policy.k8s.checker import Checker, Path
from gpupolicy.policy.k8s.meta import Condition, ObjectMeta


def _int_or_string(value: Any) -> int | str:
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError(f"invalid_type: must be an integer or a percentage such as '50%', not {value!r}")


IntOrString = Annotated[int | str, PlainValidator(_int_or_string)]
"""An ``intstr.IntOrString``: a count, or a percentage such as ``"50%"``."""

SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
_PERCENT = re.compile(r"[0-9]+%")


class LabelSelectorRequirement(K8sModel):
    key: Str
    operator: SelectorOperator
    values: list[Str] | None = None


class LabelSelector(K8sModel):
    """A metav1.LabelSelector: ``matchLabels`` and ``matchExpressions`` ANDed; empty selects everything."""

    match_labels: dict[Str, Str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class PodDisruptionBudgetSpec(K8sModel):
    min_available: IntOrString | None = None
    max_unavailable: IntOrString | None = None
    selector: LabelSelector | None = None
    unhealthy_pod_eviction_policy: Literal["IfHealthyBudget", "AlwaysAllow"] | None = None


class PodDisruptionBudgetStatus(K8sModel):
    observed_generation: Int | None = None
    disrupted_pods: dict[Str, Time] | None = None
    disruptions_allowed: Int | None = None
    current_healthy: Int | None = None
    desired_healthy: Int | None = None
    expected_pods: Int | None = None
    conditions: list[Condition] | None = None


class PodDisruptionBudget(K8sModel):
    api_version: Literal["policy/v1"] = "policy/v1"
    kind: Literal["PodDisruptionBudget"] = "PodDisruptionBudget"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodDisruptionBudgetSpec = Field(default_factory=PodDisruptionBudgetSpec)
    status: PodDisruptionBudgetStatus | None = None


def percent(value: IntOrString) -> int | None:
    """The percentage a valid ``"NN%"`` stands for, None for an integer."""
    return int(value[:-1]) if isinstance(value, str) else None


def check_pod_disruption_budget(c: Checker, pdb: PodDisruptionBudget) -> None:
    """The spec rules of ``ValidatePodDisruptionBudgetSpec`` and the non-negative counts of its status."""
    spec = pdb.spec
    if spec.min_available is not None and spec.max_unavailable is not None:
        c.add("mutually_exclusive", "minAvailable and maxUnavailable cannot be both set", ("spec",))
    for field, value in (("minAvailable", spec.min_available), ("maxUnavailable", spec.max_unavailable)):
        if value is not None:
            _int_or_percent(c, value, ("spec", field), field)
    if spec.selector is not None:
        check_label_selector(c, spec.selector, ("spec", "selector"))
    status = pdb.status
    if status is not None:
        for field in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
            count = getattr(status, _snake(field))
            if count is not None and count < 0:
                c.add("invalid_value", f"{field} must be greater than or equal to 0, not {count}", ("status", field))


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _int_or_percent(c: Checker, value: IntOrString, path: Path, what: str) -> None:
    if isinstance(value, int):
        if value < 0:
            c.add("invalid_value", f"{what} must be greater than or equal to 0, not {value}", path)
    elif not _PERCENT.fullmatch(value):
        c.add("invalid_value", f"{what} {value!r} must be an integer or a percentage (e.g. '5%')", path)
    elif int(value[:-1]) > 100:
        c.add("invalid_value", f"{what} {value!r} must not be greater than 100%", path)


def check_label_selector(c: Checker, selector: LabelSelector, path: Path) -> None:
    """``ValidateLabelSelector``: label keys and values, and values only with In/NotIn (and required there)."""
    for key, value in (selector.match_labels or {}).items():
        lpath = (*path, "matchLabels", key)
        c.name(names.label_key(key), lpath, "label key", key)
        c.name(names.label_value(value), lpath, "label value", value)
    for i, req in enumerate(selector.match_expressions or ()):
        rpath = (*path, "matchExpressions", i)
        if req.operator in ("In", "NotIn") and not req.values:
            c.add("missing_field", f"values must be specified when operator is {req.operator}", (*rpath, "values"))
        if req.operator in ("Exists", "DoesNotExist") and req.values:
            c.add("invalid_value", f"values may not be specified when operator is {req.operator}", (*rpath, "values"))
        c.name(names.label_key(req.key), (*rpath, "key"), "label key", req.key)
        for j, value in enumerate(req.values or ()):
            c.name(names.label_value(value), (*rpath, "values", j), "label value", value)
