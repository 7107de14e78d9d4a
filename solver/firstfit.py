"""The baselines: Kubernetes' structured allocator (first-fit) and a best-fit variant.

``first_fit`` mirrors ``k8s.io/dynamic-resource-allocation/structured``: claims are handled one pod
(gang) at a time in arrival order; for each, nodes are tried in order and the first node on which a
depth-first search finds a complete allocation wins. The search walks claim → request → alternative
(subrequests in order) → candidate devices in pool/slice/device order, checking availability,
consumable capacity, shared counters and constraints, and backtracks on failure. No scoring, no look
at other pending claims.

CEL run-time errors (devices in ``Alternative.errors``) follow the allocator too: a device is evaluated only
when the search reaches it on the node being tried and it is not in use (``ExactCount``), or, for an
``allocationMode: All`` request (or subrequest), every device of the node before the search starts. The first
error met fails the pod's attempt: the scheduler aborts its scheduling cycle and retries later, so the gang is
not placed, with the error as its reason (``cel_runtime_error``, "unschedulable for now"), and the next pod goes
on. An error on a device the search never reaches does not matter. The allocator's other search-time error, a
constraint that rejects a free device of an ``All`` request, is met the same way (``constraint_unsatisfiable``).

``best_fit`` uses the same search but orders nodes by fewest free eligible devices and prefers devices
on already partly used GPUs (counter sets, shared devices), so that whole GPUs stay free.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gpupolicy.solver.failing import without_failing
from gpupolicy.solver.problem import (
    CLAIM_RESULTS_MAX,
    AllocationMode,
    Alternative,
    AttributeValue,
    Claim,
    ClaimKey,
    CounterUse,
    DeviceIndex,
    DeviceResult,
    NodeName,
    Problem,
    node_options,
)
from gpupolicy.solver.quotas import existing_usage, usage_of
from gpupolicy.solver.result import Placement, Reason, Solution
from gpupolicy.solver.state import Usage

MAX_STEPS = 200_000  # per (gang, node): the allocator's exponential worst case, bounded like its timeout
_SHARE_NS = uuid.UUID("6f1c2b4e-3d5a-4f7e-9a10-2b3c4d5e6f70")

DeviceOrder = Callable[[Usage, list[DeviceIndex]], list[DeviceIndex]]
NodeOrder = Callable[[Usage, list[Claim], list[NodeName]], list[NodeName]]


def share_id(claim: ClaimKey, request: str, device: DeviceIndex, nth: int = 0) -> str:
    """A fresh, deterministic shareID for one allocation of a multi-allocatable device."""
    return str(uuid.uuid5(_SHARE_NS, f"{claim}|{request}|{device}|{nth}"))


class AllocatorError(Exception):
    """Kubernetes' allocator stops with this error where the search met it: a selector failing on a device it
    evaluates, or a constraint rejecting one of the devices of an ``All`` request."""

    def __init__(self, claim: ClaimKey, error: tuple[str, str]) -> None:
        super().__init__(error[1])
        self.claim = claim
        self.code, self.message = error


@dataclass
class _Search:
    problem: Problem
    usage: Usage
    claims: list[Claim]
    node: NodeName
    device_order: DeviceOrder
    index: NodeIndex
    errors_fatal: bool = False  # evaluate failing devices where the allocator would (first-fit)
    steps: int = 0
    chosen: list[list[DeviceResult]] = field(default_factory=list)

    def run(self) -> list[list[DeviceResult]] | None:
        """The first allocation in Kubernetes' order, or None; :class:`AllocatorError` when the allocator would
        evaluate a failing device first (``errors_fatal``). Usage is left as found unless an allocation is found."""
        self.chosen = [[] for _ in self.claims]
        slots = [(ci, ri) for ci, claim in enumerate(self.claims) for ri in range(len(claim.requests))]
        try:
            if self.errors_fatal:
                self._all_mode_errors()
            ok = self._request(slots, 0)
        except AllocatorError:
            self.usage.remove(r for results in self.chosen for r in results)
            raise
        return self.chosen if ok else None

    def _all_mode_errors(self) -> None:
        """The allocator evaluates every device of the node for each ``All`` request and subrequest, claim by
        claim, request by request, before it searches."""
        for claim in self.claims:
            for request in claim.requests:
                for alternative in request.alternatives:
                    if alternative.mode == AllocationMode.ALL:
                        failing = self.index.failing(alternative, self.node)
                        if failing:
                            raise AllocatorError(claim.key, alternative.errors[failing[0]])

    def _with_failing(self, alternative: Alternative, ordered: list[DeviceIndex]) -> list[DeviceIndex]:
        failing = self.index.failing(alternative, self.node) if self.errors_fatal else []
        if not failing:
            return ordered
        devices = self.problem.devices
        return sorted(ordered + failing, key=lambda d: devices[d].order)

    def _evaluated(self, ci: int, alternative: Alternative, d: DeviceIndex) -> None:
        """The allocator's per-device order: a device in use is skipped before any selector runs on it."""
        if alternative.admin_access:
            skipped = any(r.device == d for r in self.chosen[ci])
        else:
            skipped = not self.problem.devices[d].multi_allocatable and self.usage.in_use(d)
        if not skipped:
            raise AllocatorError(self.claims[ci].key, alternative.errors[d])

    def _request(self, slots: list[tuple[int, int]], pos: int) -> bool:
        if pos == len(slots):
            return True
        ci, ri = slots[pos]
        claim = self.claims[ci]
        for alternative in claim.requests[ri].alternatives:
            candidates = self.index.candidates(alternative, self.node)
            # The allocator's errAllocationResultMaxSizeExceeded: this alternative would pass the claim's
            # 32 results, try the next subrequest (it may need fewer devices).
            available = CLAIM_RESULTS_MAX - len(self.chosen[ci])
            needed = len(candidates) if alternative.mode == AllocationMode.ALL else alternative.count
            if needed > available:
                continue
            if alternative.mode == AllocationMode.ALL:
                if self._take_all(ci, alternative, candidates) and self._request(slots, pos + 1):
                    return True
                self._drop(ci, alternative.name)
                continue
            ordered = self._with_failing(alternative, self.device_order(self.usage, candidates))
            if self._pick(slots, pos, ci, alternative, ordered, 0, alternative.count):
                return True
        return False

    def _pick(
        self,
        slots: list[tuple[int, int]],
        pos: int,
        ci: int,
        alternative: Alternative,
        ordered: list[DeviceIndex],
        start: int,
        left: int,
    ) -> bool:
        if left == 0:
            return self._request(slots, pos + 1)
        for i in range(start, len(ordered)):
            self.steps += 1
            if self.steps > MAX_STEPS:
                return False
            if ordered[i] in alternative.errors:
                self._evaluated(ci, alternative, ordered[i])
                continue
            result = self._try(ci, alternative, ordered[i])
            if result is None:
                continue
            if self._pick(slots, pos, ci, alternative, ordered, i + 1, left - 1):
                return True
            self._undo(ci, result)
            if self.steps > MAX_STEPS:
                return False
        return False

    def _try(self, ci: int, alternative: Alternative, d: DeviceIndex) -> DeviceResult | None:
        claim = self.claims[ci]
        if any(r.device == d for r in self.chosen[ci]) and not self.problem.devices[d].multi_allocatable:
            return None
        consumed = self.usage.consumption(d, alternative)
        if consumed is None or not self._constraints_ok(ci, alternative.name, d):
            return None
        sid = None
        if self.problem.devices[d].multi_allocatable and not alternative.admin_access:
            nth = sum(1 for r in self.chosen[ci] if r.device == d)
            sid = share_id(claim.key, alternative.name, d, nth)
        result = DeviceResult(
            request=alternative.name,
            device=d,
            admin_access=alternative.admin_access,
            share_id=sid,
            consumed=consumed if self.problem.devices[d].multi_allocatable else {},
            tolerations=alternative.tolerations,
        )
        self.chosen[ci].append(result)
        self.usage.add([result])
        return result

    def _undo(self, ci: int, result: DeviceResult) -> None:
        self.chosen[ci].remove(result)
        self.usage.remove([result])

    def _take_all(self, ci: int, alternative: Alternative, candidates: list[DeviceIndex]) -> bool:
        if not candidates:
            return False
        for d in candidates:
            if self._try(ci, alternative, d) is None:
                if self.errors_fatal and self._available(ci, alternative, d):
                    # the allocator's allocateDevice with must=true: a constraint that rejects one of "all" the
                    # devices is an error, not a failed attempt
                    device = self.problem.devices[d]
                    message = (
                        f"request {alternative.name}: cannot add device {device.driver}/{device.pool}/{device.name} "
                        "because a claim constraint would not be satisfied"
                    )
                    raise AllocatorError(self.claims[ci].key, ("constraint_unsatisfiable", message))
                return False
        return True

    def _available(self, ci: int, alternative: Alternative, d: DeviceIndex) -> bool:
        """``_try``'s checks before the constraints."""
        if any(r.device == d for r in self.chosen[ci]) and not self.problem.devices[d].multi_allocatable:
            return False
        return self.usage.consumption(d, alternative) is not None

    def _drop(self, ci: int, name: str) -> None:
        for result in [r for r in self.chosen[ci] if r.request == name]:
            self._undo(ci, result)

    def _constraints_ok(self, ci: int, name: str, d: DeviceIndex) -> bool:
        claim = self.claims[ci]
        attrs = self.problem.devices[d].attributes
        for constraint in claim.constraints:
            if not constraint.applies(name):
                continue
            if constraint.attribute not in attrs:
                return False
            value = attrs[constraint.attribute]
            others = [
                self.problem.devices[r.device].attributes.get(constraint.attribute)
                for r in self.chosen[ci]
                if constraint.applies(r.request)
            ]
            if constraint.distinct and any(_same(value, o) for o in others):
                return False
            if not constraint.distinct and any(not _same(value, o) for o in others):
                return False
        return True


def _same(a: AttributeValue, b: AttributeValue | None) -> bool:
    return type(a) is type(b) and a == b


class NodeIndex:
    """Eligible devices of an alternative per node (node-bound ones plus those usable everywhere)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.cache: dict[int, tuple[dict[NodeName, list[DeviceIndex]], list[DeviceIndex]]] = {}

    def candidates(self, alternative: Alternative, node: NodeName) -> list[DeviceIndex]:
        entry = self.cache.get(id(alternative))
        if entry is None:
            per_node: dict[NodeName, list[DeviceIndex]] = {}
            everywhere: list[DeviceIndex] = []
            for d in alternative.eligible:
                nodes = self.problem.devices[d].nodes
                if nodes is None:
                    everywhere.append(d)
                    continue
                for n in nodes:
                    per_node.setdefault(n, []).append(d)
            entry = (per_node, everywhere)
            self.cache[id(alternative)] = entry
        per_node, everywhere = entry
        local = per_node.get(node, [])
        if not everywhere:
            return local
        if not local:
            return everywhere
        devices = self.problem.devices
        return sorted(local + everywhere, key=lambda d: devices[d].order)

    def failing(self, alternative: Alternative, node: NodeName) -> list[DeviceIndex]:
        """The devices usable from ``node`` on which a selector of the alternative fails, in Kubernetes' order."""
        if not alternative.errors:
            return []
        devices = self.problem.devices
        out = []
        for d in alternative.errors:
            nodes = devices[d].nodes
            if nodes is None or node in nodes:
                out.append(d)
        return sorted(out, key=lambda d: devices[d].order)

    def enough(self, usage: Usage, claims: list[Claim], node: NodeName) -> bool:
        """Cheap pre-check: every request has an alternative with enough free candidates on the node."""
        for claim in claims:
            for request in claim.requests:
                if not any(self._free(usage, a, node) for a in request.alternatives):
                    return False
        return True

    def any_failing(self, claims: list[Claim], node: NodeName) -> bool:
        return any(self.failing(a, node) for c in claims for r in c.requests for a in r.alternatives)

    def _free(self, usage: Usage, alternative: Alternative, node: NodeName) -> bool:
        candidates = self.candidates(alternative, node)
        if alternative.mode == AllocationMode.ALL:
            return bool(candidates)
        if alternative.admin_access:
            return len(candidates) >= alternative.count
        free = 0
        for d in candidates:
            if self.problem.devices[d].multi_allocatable or not usage.in_use(d):
                free += 1
                if free >= alternative.count:
                    return True
        return False


def _kubernetes_order(usage: Usage, candidates: list[DeviceIndex]) -> list[DeviceIndex]:
    devices = usage.problem.devices
    return sorted(candidates, key=lambda d: devices[d].order)


def _in_order(usage: Usage, claims: list[Claim], nodes: list[NodeName]) -> list[NodeName]:
    return nodes


def _gangs(problem: Problem) -> list[list[Claim]]:
    seen: dict[str, list[Claim]] = {}
    for claim in problem.claims:
        seen.setdefault(claim.gang or claim.key, []).append(claim)
    return list(seen.values())


def _candidates(claims: Sequence[Claim]) -> set[DeviceIndex]:
    return {d for c in claims for r in c.requests for a in r.alternatives for d in a.eligible}


def _failing(claims: Sequence[Claim]) -> set[DeviceIndex]:
    return {d for c in claims for r in c.requests for a in r.alternatives for d in a.errors}


def _failing_anywhere(gang: list[Claim]) -> bool:
    return any(a.errors for c in gang for r in c.requests for a in r.alternatives)


def greedy(
    problem: Problem, strategy: str, device_order: DeviceOrder, node_order: NodeOrder, errors_fatal: bool = False
) -> Solution:
    """Gang by gang, the first node (in ``node_order``) where the search finds an allocation. With
    ``errors_fatal``, a selector error the search meets makes the gang unschedulable for now (the reason is
    recorded in ``Solution.blocked``) and the next gang goes on."""
    started = time.perf_counter()
    usage = Usage.from_existing(problem)
    quota_used = [existing_usage(problem, q) for q in problem.quotas]
    index = NodeIndex(problem)
    solution = Solution(strategy=strategy, status="HEURISTIC")
    # Capacity only shrinks while claims are placed, so for identical pods (same compiled requests) a node
    # that could not take one cannot take a later one: first-fit resumes where the last one landed.
    resume: dict[tuple[object, ...], int] = {}
    options: dict[tuple[object, ...], list[NodeName]] = {}
    in_order = node_order is _in_order
    for gang in _gangs(problem):
        if any(c.error for c in gang):
            continue
        shape = _shape(gang)
        failing = errors_fatal and _failing_anywhere(gang)
        if shape not in options:
            candidates = _candidates(gang) | ({d for d in _failing(gang)} if failing else set())
            options[shape] = list(node_options(problem, candidates))
        nodes = node_order(usage, gang, options[shape])
        if failing:
            resume.pop(shape, None)  # where the search stops depends on more than capacity: start over
        if resume.get(shape, 0) >= len(nodes):
            continue  # failed on every node before; capacity has only shrunk since
        start = resume.get(shape, 0) if in_order else 0
        resume[shape] = len(nodes)
        for position in range(start, len(nodes)):
            node = nodes[position]
            if not index.enough(usage, gang, node) and not (failing and index.any_failing(gang, node)):
                continue
            try:
                found = _Search(problem, usage, gang, node, device_order, index, errors_fatal).run()
            except AllocatorError as error:
                for claim in gang:
                    solution.blocked[claim.key] = Reason(
                        error.code,
                        f"claim {error.claim}: {error.message} (met on node {node}; unschedulable for now, "
                        "the scheduler retries the pod)",
                    )
                resume.pop(shape, None)
                break
            if found is None:
                continue
            extra = _quota_extra(problem, gang, found)
            if any(u + e > q.limit for u, e, q in zip(quota_used, extra, problem.quotas)):
                usage.remove(r for results in found for r in results)
                continue
            quota_used = [u + e for u, e in zip(quota_used, extra)]
            for claim, results in zip(gang, found):
                solution.placements[claim.key] = Placement(claim.key, node, tuple(results))
            resume[shape] = position
            break
    solution.wall_s = time.perf_counter() - started
    return solution


def _shape(gang: list[Claim]) -> tuple[object, ...]:
    return tuple(
        (c.namespace, c.constraints, tuple((r.name, tuple(id(a) for a in r.alternatives)) for r in c.requests))
        for c in gang
    )


def _quota_extra(problem: Problem, gang: list[Claim], found: list[list[DeviceResult]]) -> list[int]:
    out = []
    for quota in problem.quotas:
        total = 0
        for claim, results in zip(gang, found):
            if claim.namespace == quota.namespace:
                total += usage_of(problem, quota, results)
        out.append(total)
    return out


def first_fit(problem: Problem) -> Solution:
    """Kubernetes' allocator, claim (pod) by claim, nodes in order; selector errors where it would meet them."""
    return greedy(problem, "first-fit", _kubernetes_order, _in_order, errors_fatal=True)


def tightest_devices(usage: Usage, candidates: list[DeviceIndex]) -> list[DeviceIndex]:
    devices = usage.problem.devices
    sibling_use: dict[tuple[str, str, str], int] = {}
    for key, held in usage.counters.items():
        sibling_use[key[:3]] = sibling_use.get(key[:3], 0) + held

    def rank(d: DeviceIndex) -> tuple[int, int, tuple[object, ...]]:
        device = devices[d]
        used_here = sum(sibling_use.get(cs, 0) for cs in device.counter_sets())
        shared = usage.holders.get(d, 0) if device.multi_allocatable else 0
        return (-(used_here + shared), -_cost(device.consumes), device.order)

    return sorted(candidates, key=rank)


def _cost(consumes: tuple[CounterUse, ...]) -> int:
    return sum(sum(u.counters.values()) for u in consumes)


def fullest_nodes(usage: Usage, claims: list[Claim], nodes: list[NodeName]) -> list[NodeName]:
    problem = usage.problem
    free: dict[NodeName, int] = dict.fromkeys(nodes, 0)
    for d in _candidates(claims):
        device = problem.devices[d]
        if usage.in_use(d):
            continue
        for node in device.nodes or ():
            if node in free:
                free[node] += 1
    position = {n: i for i, n in enumerate(nodes)}
    return sorted(nodes, key=lambda n: (free[n], position[n]))


def best_fit(problem: Problem) -> Solution:
    """Same search; tightest node first, partly used GPUs first; clear of selector errors as ``optimal`` is
    (:func:`gpupolicy.solver.failing.without_failing`)."""
    return greedy(without_failing(problem), "best-fit", tightest_devices, fullest_nodes)
