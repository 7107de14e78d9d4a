"""Devices: exclusive use, consumable capacity of shared devices, shared counters (MIG geometry).

Existing allocations were subtracted when the variables were created (busy devices have no
``take``); here the remaining capacity and counters bound what pending claims add.
"""

from __future__ import annotations

from collections import defaultdict

from ortools.sat.python import cp_model

from gpupolicy.solver.model.variables import Variables
from gpupolicy.solver.problem import DeviceIndex


def build(v: Variables) -> list[cp_model.LinearExprT]:
    for d in sorted(set(v.by_device) | set(v.victim_holds)):
        _device(v, d)
    _counters(v)
    return []


def _device(v: Variables, d: DeviceIndex) -> None:
    m = v.model
    device = v.problem.devices[d]
    takes = [t for t in v.by_device.get(d, []) if t not in v.admin and t not in v.blocked]
    used = v.used.get(d)
    if used is None:
        return
    holders = [v.take[t] for t in takes] + [v.kept[unit] for unit, _ in v.victim_holds.get(d, [])]
    if not device.multi_allocatable:
        m.add(used == sum(holders))  # at most one holder, and used exactly when held
        return
    for x in holders:
        m.add_implication(x, used)
    m.add(used <= sum(holders))
    for name, capacity in device.capacity.items():
        left = capacity.value - v.usage.capacity.get((d, name), 0)
        amounts = [(v.consumed[t].get(name, 0), v.take[t]) for t in takes]
        amounts += [(r.consumed.get(name, 0), v.kept[unit]) for unit, r in v.victim_holds.get(d, [])]
        if sum(a for a, _ in amounts) > left:
            m.add(sum(a * x for a, x in amounts) <= left)


def _counters(v: Variables) -> None:
    by_counter: dict[tuple[str, str, str, str], list[tuple[int, cp_model.IntVar]]] = defaultdict(list)
    for d, used in v.used.items():
        if v.usage.in_use(d):
            continue  # its counters are already held by an existing allocation
        for key, amount in v.usage.device_counters(d).items():
            by_counter[key].append((amount, used))
    for key, amounts in sorted(by_counter.items()):
        counter_set = v.problem.counter_index.get(key[:3])
        limit = counter_set.counters.get(key[3], 0) if counter_set else 0
        left = limit - v.usage.counters.get(key, 0)
        if sum(a for a, _ in amounts) > left:
            v.model.add(sum(a * x for a, x in amounts) <= left)
