"""Which allocated claims a solve may give up, and under which disruption budgets (pure: values in, values out).

A claim is freed by evicting the pods that use it (``status.reservedFor``). The pods that share claims, and the
pods of one ``gpupolicy.dev/group`` in a namespace, form one *unit*: evicted together or not at all. A unit is a
candidate only when every pod of it is known, bound to a node, not being deleted and selected by at most one
budget (the Eviction API refuses a pod with two), and every claim of it is reserved by pods of the unit alone (a
claim reserved by nobody, or also by a consumer that is not a known pod, keeps its whole unit in place). A unit
is *movable* (defragmentation) when every pod carries ``gpupolicy.dev/movable: "true"`` and has a controller
(``ownerReferences[].controller``) that recreates it.

Disruption budgets are PodDisruptionBudgets: the pods of the unit they select (same namespace, label selector)
count against ``allowed`` (``status.disruptionsAllowed``, or, for a budget without status, what the disruption
controller would compute from its spec and the pods it selects, see :func:`allowed_now`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gpupolicy.policy.k8s.claim import ResourceClaim, ResourceClaimConsumerReference
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
    """A PodDisruptionBudget reduced to its selector and the evictions it allows now.

    ``selector`` False is a budget without a selector, which selects no pod (``policy/v1``); an empty one
    (no labels, no expressions) selects every pod of the namespace. ``allowed`` None: the budget has no status
    yet, and what it allows is computed from ``min_available``/``max_unavailable`` and the pods it selects.
    """

    namespace: str
    name: str
    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[Requirement, ...] = ()
    allowed: int | None = 0
    selector: bool = True
    min_available: int | str | None = None
    max_unavailable: int | str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def selects(self, pod: PodInfo) -> bool:
        """Kubernetes' label selector semantics (``LabelSelectorAsSelector``): every label and expression holds."""
        if not self.selector or pod.namespace != self.namespace:
            return False
        if any(pod.labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        return all(_holds(req, pod.labels) for req in self.match_expressions)


def _holds(req: Requirement, labels: Mapping[str, str]) -> bool:
    present = req.key in labels
    if req.operator == "In":
        return present and labels[req.key] in req.values
    if req.operator == "NotIn":
        return not present or labels[req.key] not in req.values
    if req.operator == "Exists":
        return present
    if req.operator == "DoesNotExist":
        return not present
    return False


def allowed_now(budget: BudgetInfo, pods: Sequence[PodInfo]) -> int:
    """The evictions ``budget`` allows: its status, else what the disruption controller would write
    (``pkg/controller/disruption``: healthy pods minus desired healthy, 0 when no pod is expected)."""
    if budget.allowed is not None:
        return max(0, budget.allowed)
    selected = [p for p in pods if budget.selects(p)]
    healthy = sum(1 for p in selected if p.phase == "Running" and not p.deleting)
    expected = len(selected)
    desired = 0
    if budget.max_unavailable is not None:
        desired = max(0, expected - _scaled(budget.max_unavailable, expected))
    elif budget.min_available is not None:
        desired = _scaled(budget.min_available, expected)
    else:
        expected = 0
    return max(0, healthy - desired) if expected > 0 else 0


def _scaled(value: int | str, total: int) -> int:
    """``intstr.GetScaledValueFromIntOrPercent`` rounding up; a malformed percentage makes the controller fail
    safe (nothing allowed), as if every pod were needed."""
    if isinstance(value, int):
        return value
    digits = value[:-1] if value.endswith("%") else ""
    if not digits.isdigit():
        return total + 1
    return -(-int(digits) * total // 100)


def build_evictions(
    allocated: Sequence[ResourceClaim], pods: Sequence[PodInfo], budgets: Sequence[BudgetInfo]
) -> tuple[dict[ClaimKey, Eviction], dict[str, int]]:
    """The candidate claims (claim -> its unit, pods, budgets, movable) and each budget's allowed evictions.

    A pod selected by more than one budget makes its unit no candidate: the Eviction API refuses to evict such a
    pod ("This pod has more than one PodDisruptionBudget").
    """
    units = _Units()
    known = {p.key: p for p in pods}
    by_uid = {(p.namespace, p.uid): p for p in pods if p.uid}
    claims: dict[ClaimKey, str] = {}
    for claim in allocated:
        namespace, name = claim.metadata.namespace_or_default, claim.metadata.name or ""
        key = ClaimKey(f"{namespace}/{name}")
        node = claims[key] = f"claim:{key}"
        units.add(node)
        reserved = (claim.status.reserved_for if claim.status else None) or []
        if not reserved:
            units.taint(node)
        for consumer in reserved:
            pod = _consumer(consumer, namespace, by_uid, known)
            if pod is None:
                units.taint(node)
            else:
                units.union(node, f"pod:{pod.key}")
    selecting = {p.key: tuple(sorted(b.key for b in budgets if b.selects(p))) for p in pods}
    for pod in pods:
        node = f"pod:{pod.key}"
        units.add(node)
        group = pod.labels.get(GROUP_LABEL)
        if group:
            units.union(node, f"group:{pod.namespace}/{group}")
        if not pod.node or pod.deleting or len(selecting[pod.key]) > 1:
            units.taint(node)
    members = units.members()
    tainted = units.tainted
    out: dict[ClaimKey, Eviction] = {}
    for key, node in claims.items():
        root = units.find(node)
        if root not in tainted:
            unit_pods = [known[m.removeprefix("pod:")] for m in members[root] if m.startswith("pod:")]
            out[key] = _eviction(members[root], unit_pods, selecting)
    return out, {b.key: allowed_now(b, pods) for b in budgets}


def _consumer(
    consumer: ResourceClaimConsumerReference,
    namespace: str,
    by_uid: Mapping[tuple[str, str], PodInfo],
    known: Mapping[str, PodInfo],
) -> PodInfo | None:
    """The known pod a ``reservedFor`` entry names: by uid, else by name (when neither side's uid contradicts)."""
    if consumer.resource != "pods" or consumer.api_group:
        return None
    pod = by_uid.get((namespace, consumer.uid)) if consumer.uid else None
    if pod is None:
        pod = known.get(f"{namespace}/{consumer.name}")
        if pod is not None and pod.uid and consumer.uid and pod.uid != consumer.uid:
            return None  # a pod of that name, but not the one the claim is reserved for
    return pod


def _eviction(members: Sequence[str], pods: Sequence[PodInfo], selecting: Mapping[str, tuple[str, ...]]) -> Eviction:
    groups = sorted(m for m in members if m.startswith("group:"))
    keys = sorted(p.key for p in pods)
    unit = groups[0] if groups else f"pod:{keys[0]}"
    budgets = sorted(b for p in pods for b in selecting[p.key])  # once per pod it counts
    movable = all(p.annotations.get(MOVABLE) == "true" and p.controlled for p in pods)
    return Eviction(unit=unit, pods=tuple(keys), budgets=tuple(budgets), movable=movable)


class _Units:
    """Union-find over string nodes; a tainted node makes its whole set no candidate."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self._tainted: set[str] = set()

    def add(self, node: str) -> None:
        self.parent.setdefault(node, node)

    def find(self, node: str) -> str:
        self.add(node)
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def taint(self, node: str) -> None:
        self._tainted.add(node)

    @property
    def tainted(self) -> set[str]:
        return {self.find(n) for n in self._tainted}

    def members(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for node in self.parent:
            out.setdefault(self.find(node), []).append(node)
        return out
