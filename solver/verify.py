"""An independent checker for placements: it never calls the solver or the baselines.

``verify(problem, solution)`` returns every violation found (empty = valid): request counts and
allocation mode, eligibility (selectors as compiled, taints vs tolerations), node locality, devices used
twice, consumable capacity and shareIDs, shared counters (MIG geometry), matchAttribute /
distinctAttribute, per-namespace quotas and gangs (all or nothing).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from gpupolicy.solver.problem import (
    ANYWHERE,
    CLAIM_RESULTS_MAX,
    AllocationMode,
    Claim,
    ClaimKey,
    DeviceIndex,
    DeviceResult,
    Problem,
    Quota,
    tolerated,
)
from gpupolicy.solver.result import Placement, Solution
from gpupolicy.solver.verify_disruption import check_disruption
from gpupolicy.solver.verify_resources import resource_errors


def verify(problem: Problem, solution: Solution) -> list[str]:
    errors: list[str] = []
    claims = problem.claim_index
    for key, placement in sorted(solution.placements.items()):
        claim = claims.get(key)
        if claim is None:
            errors.append(f"{key}: placed but not a pending claim")
            continue
        if claim.error is not None:
            errors.append(f"{key}: placed although it has error {claim.error[0]}")
        errors += _check_claim(problem, claim, placement)
    errors += _check_devices(problem, solution)
    errors += _check_quotas(problem, solution)
    errors += _check_gangs(problem, solution)
    errors += check_disruption(problem, solution)
    return errors


def _check_claim(problem: Problem, claim: Claim, placement: Placement) -> list[str]:
    errors: list[str] = []
    key = claim.key
    by_request: dict[str, list[DeviceResult]] = defaultdict(list)
    for result in placement.results:
        by_request[result.request.split("/", 1)[0]].append(result)
    if len(placement.results) > CLAIM_RESULTS_MAX:
        errors.append(f"{key}: {len(placement.results)} results, more than the claim limit of {CLAIM_RESULTS_MAX}")
    names = {r.name for r in claim.requests}
    errors += [f"{key}: result for unknown request {n!r}" for n in sorted(set(by_request) - names)]
    for request in claim.requests:
        results = by_request.get(request.name, [])
        used = {r.request for r in results}
        alternatives = {a.name: a for a in request.alternatives}
        if len(used) != 1 or next(iter(used)) not in alternatives:
            errors.append(f"{key}: request {request.name!r} must use exactly one alternative, got {sorted(used)}")
            continue
        alternative = alternatives[next(iter(used))]
        eligible = set(alternative.eligible)
        devices = [r.device for r in results]
        if alternative.mode == AllocationMode.EXACT_COUNT and len(devices) != alternative.count:
            errors.append(f"{key}: {alternative.name} wants {alternative.count} devices, got {len(devices)}")
        if alternative.mode == AllocationMode.ALL:
            want = {d for d in eligible if _usable(problem, d, placement.node)}
            if set(devices) != want or not want:
                errors.append(f"{key}: {alternative.name} (All) must take all {len(want)} matching devices")
        for result in results:
            device = problem.devices[result.device]
            if result.device not in eligible:
                errors.append(f"{key}: {device.label} is not eligible for {alternative.name}")
            if not tolerated(device.taints, alternative.tolerations):
                errors.append(f"{key}: {device.label} has a taint {alternative.name} does not tolerate")
            if not _usable(problem, result.device, placement.node):
                errors.append(f"{key}: {device.label} is not usable from node {placement.node!r}")
            if result.admin_access != alternative.admin_access:
                errors.append(f"{key}: {device.label} adminAccess differs from the request")
            if not device.multi_allocatable and len([r for r in results if r.device == result.device]) > 1:
                errors.append(f"{key}: {device.label} taken twice by {alternative.name}")
    errors += _check_constraints(problem, claim, placement)
    return errors


def _usable(problem: Problem, d: DeviceIndex, node: str) -> bool:
    nodes = problem.devices[d].nodes
    if nodes is None:
        return True
    return node != ANYWHERE and node in nodes


def _check_constraints(problem: Problem, claim: Claim, placement: Placement) -> list[str]:
    errors: list[str] = []
    for constraint in claim.constraints:
        values = []
        for result in placement.results:
            if not constraint.applies(result.request):
                continue
            attrs = problem.devices[result.device].attributes
            if constraint.attribute not in attrs:
                errors.append(f"{claim.key}: {problem.devices[result.device].label} lacks {constraint.attribute}")
                continue
            value = attrs[constraint.attribute]
            values.append((type(value).__name__, value))
        if constraint.distinct and len(values) != len(set(values)):
            errors.append(f"{claim.key}: distinctAttribute {constraint.attribute} repeated: {sorted(map(str, values))}")
        if not constraint.distinct and len(set(values)) > 1:
            errors.append(f"{claim.key}: matchAttribute {constraint.attribute} differs: {sorted(map(str, values))}")
    return errors


def _all_results(problem: Problem, solution: Solution) -> Iterable[tuple[ClaimKey, DeviceResult]]:
    gone = solution.preempted.keys() | solution.moved.keys()
    for existing in problem.existing:
        if existing.claim in gone:
            continue
        for result in existing.results:
            yield existing.claim, result
    for key, placement in solution.placements.items():
        for result in placement.results:
            yield key, result


def _check_devices(problem: Problem, solution: Solution) -> list[str]:
    errors = [message for _, message in resource_errors(problem, _all_results(problem, solution))]
    for key, placement in solution.placements.items():
        errors += _check_consumed(problem, key, placement)
    return errors


def _check_consumed(problem: Problem, key: ClaimKey, placement: Placement) -> list[str]:
    errors: list[str] = []
    claim = problem.claim_index[key]
    alternatives = {a.name: a for r in claim.requests for a in r.alternatives}
    for result in placement.results:
        device = problem.devices[result.device]
        alternative = alternatives.get(result.request)
        if alternative is None or not device.multi_allocatable or result.admin_access:
            continue
        want = alternative.consumed(device)
        if want is None or dict(result.consumed) != want:
            errors.append(f"{key}: {device.label} consumedCapacity {dict(result.consumed)} should be {want}")
    return errors


def _quota_use(problem: Problem, quota: Quota, results: Iterable[DeviceResult]) -> int:
    if quota.resource == "claims":
        return 1
    return sum(quota.amount(r, problem.devices[r.device]) for r in results)


def _check_quotas(problem: Problem, solution: Solution) -> list[str]:
    errors: list[str] = []
    gone = solution.preempted.keys() | solution.moved.keys()
    for quota in problem.quotas:
        used = 0
        for existing in problem.existing:
            if existing.namespace == quota.namespace and existing.claim not in gone:
                used += _quota_use(problem, quota, existing.results)
        for key, placement in solution.placements.items():
            if problem.claim_index[key].namespace != quota.namespace:
                continue
            used += _quota_use(problem, quota, placement.results)
        if used > quota.limit:
            errors.append(f"quota {quota.namespace}/{quota.resource}: {used} used exceeds {quota.limit}")
    return errors


def _check_gangs(problem: Problem, solution: Solution) -> list[str]:
    errors: list[str] = []
    for gang, keys in sorted(problem.gangs.items()):
        placed = [k for k in keys if k in solution.placements]
        if placed and len(placed) != len(keys):
            errors.append(f"gang {gang}: only {len(placed)} of {len(keys)} claims placed")
        nodes = {solution.placements[k].node for k in placed} - {ANYWHERE}
        if len(nodes) > 1:
            errors.append(f"gang {gang}: claims placed on different nodes {sorted(nodes)}")
    return errors
