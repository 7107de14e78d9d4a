"""The solver's own view of a placement problem: plain frozen values, no Kubernetes types.

``gpupolicy.solver.compile`` builds a :class:`Problem` from ResourceSlices, DeviceClasses and ResourceClaims
(CEL already evaluated, quantities already integers); the model, the baselines and the verifier all
read only this. Devices are referred to by their index in ``Problem.devices``.

Conventions:
- quantities are integers in the device's base unit (bytes, milli-units …), exactly as compiled;
- a device's ``nodes`` is the set of nodes that can use it, ``None`` meaning every node;
- a request is a tuple of alternatives: one for ``exactly``, one per subrequest for ``firstAvailable``;
  an alternative's ``name`` is what the result's ``request`` field says (``req`` or ``req/sub``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import NewType

from gpupolicy.policy.k8s.limits import ALLOCATION_RESULTS_MAX

DeviceIndex = NewType("DeviceIndex", int)
ClaimKey = NewType("ClaimKey", str)  # "namespace/name"
NodeName = NewType("NodeName", str)

ANYWHERE = NodeName("")  # pseudo node for claims whose devices are all usable from every node

AttributeValue = bool | int | str


class AllocationMode(StrEnum):
    EXACT_COUNT = "ExactCount"
    ALL = "All"


class Objective(StrEnum):
    PACK = "pack"
    SPREAD = "spread"
    LEAST_FRAGMENTATION = "least-fragmentation"


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"  # None | NoSchedule | NoExecute

    @property
    def blocks(self) -> bool:
        return self.effect in ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"  # Equal | Exists
    value: str = ""
    effect: str = ""  # empty: every effect

    def tolerates(self, taint: Taint) -> bool:
        """Kubernetes' ``resourceclaim.ToleratesTaint``: effect, then key (empty matches every key), then operator."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator in ("", "Equal"):
            return self.value == taint.value
        return self.operator == "Exists"


def tolerated(taints: tuple[Taint, ...], tolerations: tuple[Toleration, ...]) -> bool:
    """Every blocking taint of a device is tolerated."""
    return all(any(t.tolerates(taint) for t in tolerations) for taint in taints if taint.blocks)


@dataclass(frozen=True)
class RequestPolicy:
    """How a request for consumable capacity is rounded (``capacity.<name>.requestPolicy``)."""

    default: int | None = None
    valid_values: tuple[int, ...] = ()
    range_min: int | None = None
    range_max: int | None = None
    range_step: int | None = None

    def round_up(self, amount: int) -> int | None:
        """The amount actually consumed for ``amount`` requested, or None when nothing valid covers it."""
        if self.valid_values:
            fits = [v for v in sorted(self.valid_values) if v >= amount]
            return fits[0] if fits else None
        if self.range_min is not None:
            value = max(amount, self.range_min)
            if self.range_step:
                steps = -(-(value - self.range_min) // self.range_step)
                value = self.range_min + steps * self.range_step
            if self.range_max is not None and value > self.range_max:
                return None
            return value
        return amount


@dataclass(frozen=True)
class Capacity:
    value: int
    policy: RequestPolicy | None = None


@dataclass(frozen=True)
class CounterUse:
    """Counters a device consumes from one shared counter set of its pool."""

    counter_set: str
    counters: Mapping[str, int]


@dataclass(frozen=True)
class CounterSet:
    driver: str
    pool: str
    name: str
    counters: Mapping[str, int]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.driver, self.pool, self.name)


@dataclass(frozen=True)
class Device:
    driver: str
    pool: str
    name: str
    slice_name: str = ""
    node_name: str | None = None  # node-local slice (or per-device nodeName)
    node_selector: Mapping[str, object] | None = None  # raw v1 NodeSelector, for the result
    nodes: frozenset[NodeName] | None = None  # usable from these nodes; None = every node
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)  # "domain/id" -> value
    capacity: Mapping[str, Capacity] = field(default_factory=dict)  # "domain/id" or plain name -> capacity
    consumes: tuple[CounterUse, ...] = ()
    taints: tuple[Taint, ...] = ()
    multi_allocatable: bool = False
    order: tuple[object, ...] = ()  # Kubernetes' candidate order: (driver, pool, slice, index)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.driver, self.pool, self.name)

    @property
    def label(self) -> str:
        return f"{self.driver}/{self.pool}/{self.name}"

    @property
    def memory_slices(self) -> tuple[tuple[str, int], ...]:
        """(counter set, slot) per ``memory-slice-<i>`` counter it consumes: the MIG memory slots it occupies."""
        return tuple(
            (use.counter_set, int(name.removeprefix("memory-slice-")))
            for use in self.consumes
            for name in use.counters
            if name.startswith("memory-slice-") and name.removeprefix("memory-slice-").isdigit()
        )

    def counter_sets(self) -> tuple[tuple[str, str, str], ...]:
        return tuple((self.driver, self.pool, use.counter_set) for use in self.consumes)

    @property
    def gpu_key(self) -> tuple[str, ...]:
        """The physical GPU: its shared counter set, else its MIG parent, else the device itself."""
        if self.consumes:
            return ("counters", *self.counter_sets()[0])
        parent = next((str(v) for k, v in self.attributes.items() if k.endswith("/parentUUID")), "")
        if parent:
            return ("parent", self.driver, self.pool, parent)
        return ("device", *self.key)


@dataclass(frozen=True)
class Exclusion:
    """How many candidate devices one rule removed (for explanations)."""

    rule: str  # e.g. 'class "gpu" selector #0' or 'request "gpu" selector #1'
    location: str  # file:line:col, or ""
    excluded: int


@dataclass(frozen=True)
class Alternative:
    """One way to satisfy a request: the request itself or one of its ``firstAvailable`` subrequests."""

    name: str  # "req" or "req/sub"
    class_name: str
    eligible: tuple[DeviceIndex, ...]  # passed class + request selectors, admission, taints
    mode: AllocationMode = AllocationMode.EXACT_COUNT
    count: int = 1
    admin_access: bool = False
    tolerations: tuple[Toleration, ...] = ()
    capacity: Mapping[str, int] = field(default_factory=dict)  # requested, before rounding
    exclusions: tuple[Exclusion, ...] = ()
    candidates: int = 0  # devices considered before any selector
    scores: Mapping[DeviceIndex, int] = field(default_factory=dict)  # policy preference weight per device
    # Devices where a selector failed at run time (never eligible), with (code, message). Kubernetes' allocator
    # fails the pod's attempt when it evaluates one of them (see :mod:`gpupolicy.solver.firstfit`).
    errors: Mapping[DeviceIndex, tuple[str, str]] = field(default_factory=dict)

    def consumed(self, device: Device) -> dict[str, int] | None:
        """Capacity this alternative takes from a multi-allocatable device; None if it cannot fit at all."""
        out: dict[str, int] = {}
        for cap_name, cap in device.capacity.items():
            requested = self.capacity.get(cap_name)
            if requested is None:
                amount = cap.policy.default if cap.policy and cap.policy.default is not None else cap.value
            else:
                rounded = cap.policy.round_up(requested) if cap.policy else requested
                if rounded is None:
                    return None
                amount = rounded
            if amount > cap.value:
                return None
            out[cap_name] = amount
        if any(name not in device.capacity for name in self.capacity):
            return None
        return out


@dataclass(frozen=True)
class Request:
    name: str
    alternatives: tuple[Alternative, ...]


@dataclass(frozen=True)
class Constraint:
    attribute: str  # fully qualified
    distinct: bool = False  # False: matchAttribute, True: distinctAttribute
    requests: tuple[str, ...] = ()  # empty: every request

    def applies(self, alternative_name: str) -> bool:
        if not self.requests:
            return True
        base = alternative_name.split("/", 1)[0]
        return alternative_name in self.requests or base in self.requests


@dataclass(frozen=True)
class Claim:
    namespace: str
    name: str
    requests: tuple[Request, ...]
    constraints: tuple[Constraint, ...] = ()
    priority: int = 1  # weight of placing it (priority tier)
    tier: str = ""
    gang: str | None = None  # claims with the same gang are placed all or nothing
    error: tuple[str, str] | None = None  # (code, message): cannot be allocated at all
    location: str = ""
    uid: str = ""
    level: int = 0  # the policy priority of its tier (``priority`` is the weight derived from it)
    moving: bool = False  # defragmentation: the new place of an allocated claim, placed exactly when it moves

    @property
    def key(self) -> ClaimKey:
        return ClaimKey(f"{self.namespace}/{self.name}")


@dataclass(frozen=True)
class DeviceResult:
    request: str  # "req" or "req/sub"
    device: DeviceIndex
    admin_access: bool = False
    share_id: str | None = None
    consumed: Mapping[str, int] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()


@dataclass(frozen=True)
class Eviction:
    """How an allocated claim can be given up: by evicting the pods that use it.

    Claims with the same ``unit`` go together (the pods that share claims, and the pods of one
    ``gpupolicy.dev/group``): all are evicted, or none. ``budgets`` names the disruption budgets
    (PodDisruptionBudgets, ``namespace/name``) that count those pods, once per pod a budget selects;
    ``movable`` says every pod opted in to being moved (``gpupolicy.dev/movable: "true"``, and a controller
    that recreates it).
    """

    unit: str
    pods: tuple[str, ...]
    budgets: tuple[str, ...] = ()
    movable: bool = False


@dataclass(frozen=True)
class Existing:
    """An allocation already in the cluster: fixed, unless it may be preempted or moved (``eviction``)."""

    claim: ClaimKey
    namespace: str
    results: tuple[DeviceResult, ...]
    node: NodeName | None = None
    level: int = 0  # the policy priority of its tier (0: none)
    tier: str = ""
    weight: int = 1  # what keeping it is worth, on the scale of ``Claim.priority``
    eviction: Eviction | None = None  # None: never given up


@dataclass(frozen=True)
class Quota:
    """Per-namespace limit on what pending and existing claims hold together.

    ``resource`` "claims" counts claims; otherwise each device result counts ``capacity`` (consumed on a
    shared device, the device's capacity otherwise) when set, else ``weights[device]`` when given,
    else 1 (``resource`` "devices").
    """

    namespace: str
    resource: str
    limit: int
    location: str = ""
    weights: Mapping[DeviceIndex, int] | None = None
    capacity: str | None = None

    def amount(self, result: DeviceResult, device: Device) -> int:
        if self.resource == "claims":
            return 0
        if self.capacity is not None:
            if device.multi_allocatable and not result.admin_access:
                return result.consumed.get(self.capacity, 0)
            cap = device.capacity.get(self.capacity)
            return cap.value if cap else 0
        if self.weights is not None:
            return self.weights.get(result.device, 0)
        return 1


@dataclass(frozen=True)
class Preference:
    """Soft preference: ``weight`` per device of ``devices`` chosen (negative weight: avoid)."""

    name: str
    weight: int
    devices: frozenset[DeviceIndex]
    location: str = ""


@dataclass(frozen=True)
class Disruption:
    """What a solve may disrupt: ``preempt`` evicts allocated claims of a strictly lower priority for pending ones;
    ``defragment`` moves allocated claims that opted in (evicted, and placed again in the same plan), at most
    ``max_moves`` of them (None: no limit)."""

    preempt: bool = False
    defragment: bool = False
    max_moves: int | None = None

    @property
    def any(self) -> bool:
        return self.preempt or self.defragment


@dataclass(frozen=True)
class Problem:
    devices: tuple[Device, ...]
    claims: tuple[Claim, ...]  # pending, in arrival order
    counter_sets: tuple[CounterSet, ...] = ()
    nodes: tuple[NodeName, ...] = ()  # every node, in the scheduler's order
    existing: tuple[Existing, ...] = ()
    quotas: tuple[Quota, ...] = ()
    preferences: tuple[Preference, ...] = ()
    objective: Objective = Objective.PACK
    previous: Mapping[ClaimKey, frozenset[DeviceIndex]] = field(default_factory=dict)
    disruption: Disruption = field(default_factory=lambda: Disruption())
    budgets: Mapping[str, int] = field(default_factory=dict)  # disruption budget -> evictions it still allows

    @cached_property
    def counter_index(self) -> dict[tuple[str, str, str], CounterSet]:
        return {cs.key: cs for cs in self.counter_sets}

    @cached_property
    def claim_index(self) -> dict[ClaimKey, Claim]:
        return {c.key: c for c in self.claims}

    @cached_property
    def gangs(self) -> dict[str, tuple[ClaimKey, ...]]:
        out: dict[str, list[ClaimKey]] = {}
        for claim in self.claims:
            out.setdefault(claim.gang or claim.key, []).append(claim.key)
        return {k: tuple(v) for k, v in out.items()}


def node_options(problem: Problem, devices: set[DeviceIndex] | tuple[DeviceIndex, ...]) -> tuple[NodeName, ...]:
    """Nodes a claim with these candidate devices could be placed on (``ANYWHERE`` if none is node-bound)."""
    bound: set[NodeName] = set()
    for d in devices:
        nodes = problem.devices[d].nodes
        if nodes is not None:
            bound |= nodes
    if not bound:
        return (ANYWHERE,)
    order = {n: i for i, n in enumerate(problem.nodes)}
    return tuple(sorted(bound, key=lambda n: (order.get(n, len(order)), n)))


def usable_from(device: Device, node: NodeName) -> bool:
    return device.nodes is None or node in device.nodes


CLAIM_RESULTS_MAX = ALLOCATION_RESULTS_MAX
"""Devices one claim may get: ``resourceapi.AllocationResultsMaxSize`` (32), the length limit of
``status.allocation.devices.results``."""


def _min_devices(alternative: Alternative, devices: Sequence[Device], node: NodeName | None) -> int:
    if alternative.mode == AllocationMode.EXACT_COUNT:
        return alternative.count
    if node is None:
        return len(alternative.eligible)
    return sum(1 for d in alternative.eligible if usable_from(devices[d], node))


def claim_limit_error(requests: Sequence[Request], devices: Sequence[Device]) -> tuple[int, str] | None:
    """The structured allocator's check before it searches (``allocator_stable.go``, ``Allocate``):
    the index of the request that passes the limit and Kubernetes' message, or None.

    Per request the fewest devices it can take (its count; for ``All`` the matching devices usable from
    the node; for ``firstAvailable`` the smallest subrequest), summed in request order; once the sum would
    pass 32 the claim is an error, with Kubernetes' wording. The allocator checks on each node it
    filters, so ``All`` requests count the devices of each node in turn and the first node over the
    limit decides.
    """
    bound: Sequence[NodeName | None] = sorted(
        {
            n
            for r in requests
            for a in r.alternatives
            if a.mode == AllocationMode.ALL
            for d in a.eligible
            for n in devices[d].nodes or ()
        }
    )
    for node in bound or [None]:
        total = 0
        for index, request in enumerate(requests):
            if not request.alternatives:
                continue
            need = min(_min_devices(a, devices, node) for a in request.alternatives)
            if need > CLAIM_RESULTS_MAX - total:
                return index, (
                    f"request {request.name}: adding {need} devices exceeds the claim limit of "
                    f"{CLAIM_RESULTS_MAX}, with {total} already accounted for"
                )
            total += need
    return None
