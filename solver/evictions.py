"""Which allocated claims a solve may give up, and under which disruption budgets (pure: values in, values out).

A claim is freed by evicting the pods that use it (``status.reservedFor``). The pods that share claims, and the
pods of one ``gpupolicy.dev/group`` in a namespace, form one *unit*: evicted together or not at all. A unit is a
candidate only when every pod of it is known, bound to a node and not being deleted, and every claim it frees is
reserved by pods of the unit alone. A unit is *movable* (defragmentation) when every pod carries
``gpupolicy.dev/movable: "true"`` and has a controller (``ownerReferences[].controller``) that recreates it.

Disruption budgets are PodDisruptionBudgets: the pods of the unit they select (same namespace, label selector)
count against ``allowed`` (``status.disruptionsAllowed``, or, for a budget without status, what the disruption
controller would compute from its spec and the pods it selects).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gpupolicy.policy.k8s.claim import ResourceClaim
from gpupolicy.solver.problem import ClaimKey, Eviction

MOVABLE = "gpupolicy.dev/movable"
GROUP_LABEL = "gpupolicy.dev/group"


@dataclass(frozen=True)
class PodInfo:
    """A pod bound to a node (or running): what eviction decisions read."""

    namespace: str
    name: str
    uid: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    node: str = ""
    phase: str = "Running"
    deleting: bool = False
    controlled: bool = False  # has an ownerReference with controller: true

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class BudgetInfo:
    """A PodDisruptionBudget reduced to its selector and the evictions it allows now."""

    namespace: str
    name: str
    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[Requirement, ...] = ()
    allowed: int = 0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def build_evictions(
    allocated: Sequence[ResourceClaim], pods: Sequence[PodInfo], budgets: Sequence[BudgetInfo]
) -> tuple[dict[ClaimKey, Eviction], dict[str, int]]:
    """The candidate claims (claim -> its unit, pods, budgets, movable) and each budget's allowed evictions."""
    raise NotImplementedError  # TODO(helper: inputs) -- replaced before merge
