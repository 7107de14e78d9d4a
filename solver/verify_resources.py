"""Do these allocations fit the devices? Exclusive use, consumable capacity, shareIDs and shared counters.

Solver-free, shared by the verifier (:mod:`gpupolicy.solver.verify`) and the checks of what a solve gives up
(:mod:`gpupolicy.solver.verify_disruption`). Returns every overflow with the resource it is on, so that callers can
also ask *who* uses an overflowing resource.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from gpupolicy.solver.problem import ClaimKey, DeviceIndex, DeviceResult, Problem

Resource = tuple[object, ...]  # ("device", d) | ("capacity", d, name) | ("counter", driver, pool, set, name)


def resource_errors(problem: Problem, results: Iterable[tuple[ClaimKey, DeviceResult]]) -> list[tuple[Resource, str]]:
    out: list[tuple[Resource, str]] = []
    holders: dict[DeviceIndex, list[ClaimKey]] = defaultdict(list)
    consumed: dict[tuple[DeviceIndex, str], int] = defaultdict(int)
    share_ids: dict[DeviceIndex, list[str]] = defaultdict(list)
    for key, result in results:
        if result.admin_access:
            continue
        holders[result.device].append(key)
        device = problem.devices[result.device]
        if device.multi_allocatable:
            share_ids[result.device].append(result.share_id or "")
            for name, amount in result.consumed.items():
                consumed[(result.device, name)] += amount
    for d, keys in sorted(holders.items()):
        device = problem.devices[d]
        if not device.multi_allocatable and len(keys) > 1:
            out.append((("device", d), f"{device.label} allocated {len(keys)} times: {sorted(keys)}"))
        if device.multi_allocatable and (len(set(share_ids[d])) != len(share_ids[d]) or "" in share_ids[d]):
            out.append((("device", d), f"{device.label}: shareIDs must be present and unique"))
    for (d, name), amount in sorted(consumed.items()):
        capacity = problem.devices[d].capacity.get(name)
        if capacity is None or amount > capacity.value:
            out.append(
                (("capacity", d, name), f"{problem.devices[d].label}: {name} consumed {amount} exceeds capacity")
            )
    counters: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for d in holders:
        device = problem.devices[d]
        for use in device.consumes:
            for name, amount in use.counters.items():
                counters[(device.driver, device.pool, use.counter_set, name)] += amount
    for (driver, pool, cset, name), amount in sorted(counters.items()):
        counter_set = problem.counter_index.get((driver, pool, cset))
        limit = counter_set.counters.get(name, 0) if counter_set else 0
        if amount > limit:
            message = f"counter {driver}/{pool}/{cset}.{name}: {amount} consumed exceeds {limit}"
            out.append((("counter", driver, pool, cset, name), message))
    return out


def uses(problem: Problem, result: DeviceResult, resource: Resource) -> bool:
    """Whether ``result`` takes part in ``resource``."""
    if result.admin_access:
        return False
    if resource[0] == "device":
        return result.device == resource[1]
    if resource[0] == "capacity":
        return result.device == resource[1] and resource[2] in result.consumed
    device = problem.devices[result.device]
    return any(
        (device.driver, device.pool, use.counter_set, name) == resource[1:]
        for use in device.consumes
        for name in use.counters
    )
