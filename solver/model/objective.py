"""The lexicographic objective, folded into one weighted sum (see docs/solver.md).

Levels, most important first (each level's weight exceeds the range of everything below it):

1. placement: sum over claims of priority * placed;
2. order: minus the index of each chosen ``firstAvailable`` subrequest (Kubernetes tries them strictly in
   order, so a later one is taken only when that lets more priority-weighted claims be placed);
3. fragmentation, by objective (W = M + 1 for pack, M (N + 1) + N + 1 for least-fragmentation):
   - pack:                 (U + 1)(T + 1) W * free_nodes + (T + 1) W * free_units - W * stranded + open_mig
   - least-fragmentation:  (T + 1) W * free_units - W * stranded + (N + 1) * open_mig + free_nodes
   - spread:               active_nodes
   where a *unit* is one physical GPU (a shared counter set, or a device without counters), free means
   no allocation at all, U is the largest number of units on one node, N the number of candidate free
   nodes, open_mig the number of MIG placements (devices on some but not all memory slots of a GPU that
   the pending claims may touch) whose slots are all still free, M how many such placements there are,
   stranded the MIG capacity no device can use any more on those GPUs (compute slices idle while every
   memory slot is held, memory slots idle while every compute slice is held; ``stranded.py``) and T the
   most it can be;
4. preferences: sum of weight * take over preferred devices;
5. stability: the number of devices that a claim keeps from the previous plan.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ortools.sat.python import cp_model

from gpupolicy.solver.model.stranded import stranded_mig
from gpupolicy.solver.model.variables import Variables
from gpupolicy.solver.problem import AllocationMode, Alternative, DeviceIndex, NodeName, Objective

LIMIT = 2**62


@dataclass
class Level:
    name: str
    terms: list[cp_model.LinearExprT]
    low: int
    high: int


def unit_of(v: Variables, d: DeviceIndex) -> tuple[object, ...]:
    return v.problem.devices[d].gpu_key


def fragmentation(v: Variables) -> Level:
    units: dict[tuple[object, ...], list[DeviceIndex]] = defaultdict(list)
    for d in v.used:
        units[unit_of(v, d)].append(d)
    busy_units = {unit_of(v, DeviceIndex(d)) for d in range(len(v.problem.devices)) if v.usage.in_use(DeviceIndex(d))}
    node_units: dict[NodeName, set[tuple[object, ...]]] = defaultdict(set)
    free_unit: dict[tuple[object, ...], cp_model.IntVar] = {}
    for unit, devices in sorted(units.items(), key=lambda kv: str(kv[0])):
        if unit in busy_units:
            continue
        var = v.model.new_bool_var(f"free_unit[{unit}]")
        for d in devices:
            v.model.add_implication(v.used[d], var.Not())
            for n in v.problem.devices[d].nodes or ():
                node_units[n].add(unit)
        free_unit[unit] = var
    objective = _objective(v)
    if objective == Objective.SPREAD:
        active = []
        for n, us in sorted(node_units.items()):
            var = v.model.new_bool_var(f"active[{n}]")
            v.model.add(var <= sum(1 - free_unit[u] for u in sorted(us, key=str)))
            active.append(var)
        return Level("fragmentation", list(active), 0, len(active))
    # A node with any device in use (even one that has no placement variable here) is not free.
    busy_nodes = {
        n for d, device in enumerate(v.problem.devices) if v.usage.in_use(DeviceIndex(d)) for n in device.nodes or ()
    }
    free_node = []
    for n, us in sorted(node_units.items()):
        if n in busy_nodes:
            continue
        var = v.model.new_bool_var(f"free_node[{n}]")
        for u in sorted(us, key=str):
            v.model.add_implication(var, free_unit[u])
        free_node.append(var)
    placeable = _placeable_mig_devices(v)
    stranded, stranded_high = stranded_mig(v)
    max_units = max((len(us) for us in node_units.values()), default=0)
    if objective == Objective.PACK:  # nodes >> units >> stranded MIG slices >> MIG placements
        w_place = 1
        w_strand = len(placeable) + 1
        w_unit = (stranded_high + 1) * w_strand
        w_node = (max_units + 1) * w_unit
    else:  # least-fragmentation: units >> stranded MIG slices >> MIG placements >> nodes
        w_node = 1
        w_place = len(free_node) + 1
        w_strand = len(placeable) * w_place + len(free_node) + 1
        w_unit = (stranded_high + 1) * w_strand
    terms: list[cp_model.LinearExprT] = [w_node * x for x in free_node] + [w_unit * x for x in free_unit.values()]
    terms += [w_place * x for x in placeable] + [-w_strand * x for x in stranded]
    high = w_node * len(free_node) + w_unit * len(free_unit) + w_place * len(placeable)
    return Level("fragmentation", terms, -w_strand * stranded_high, high)


def _placeable_mig_devices(v: Variables) -> list[cp_model.IntVar]:
    """One flag per MIG placement (a device occupying some but not all memory slots of a GPU) on a GPU the
    pending claims may touch, true only while none of its slots is taken: the MIG shapes still open.

    Counting them rewards keeping whole aligned slot ranges free (a 1g slice at slot 6 of an H100 closes 4
    placements, at slot 0 it closes 6, among them the only 4g.40gb one) over scattered remainders."""
    devices = v.problem.devices
    slot_users: dict[tuple[str, str, str, int], list[DeviceIndex]] = defaultdict(list)
    for d, device in enumerate(devices):
        for counter_set, slot in device.memory_slices:
            slot_users[(device.driver, device.pool, counter_set, slot)].append(DeviceIndex(d))
    gpu_slots: dict[tuple[str, str, str], int] = defaultdict(int)
    for driver, pool, counter_set, _ in slot_users:
        gpu_slots[(driver, pool, counter_set)] += 1
    touched = {key[:3] for key, users in slot_users.items() if any(u in v.used for u in users)}
    slot_free: dict[tuple[str, str, str, int], cp_model.IntVar] = {}
    for key, users in sorted(slot_users.items()):
        if key[:3] not in touched or any(v.usage.in_use(u) for u in users):
            continue
        var = v.model.new_bool_var(f"slot_free[{'/'.join(map(str, key))}]")
        for u in users:
            if u in v.used:
                v.model.add_implication(v.used[u], var.Not())
        slot_free[key] = var
    out: list[cp_model.IntVar] = []
    for device in devices:
        slots = [(device.driver, device.pool, cs, slot) for cs, slot in device.memory_slices]
        if not slots or len(slots) >= gpu_slots[slots[0][:3]] or not all(k in slot_free for k in slots):
            continue
        var = v.model.new_bool_var(f"placeable[{device.label}]")
        for key in slots:
            v.model.add_implication(var, slot_free[key])
        out.append(var)
    return out


def _objective(v: Variables) -> Objective:
    return v.problem.objective


def preferences(v: Variables) -> Level:
    terms: list[cp_model.LinearExprT] = []
    low = high = 0
    for pref in v.problem.preferences:
        for t, x in v.take.items():
            if t[2] in pref.devices:
                terms.append(pref.weight * x)
                if pref.weight > 0:
                    high += pref.weight
                else:
                    low += pref.weight
    for claim in v.claims:
        for request in claim.requests:
            for alternative in request.alternatives:
                for d, weight in sorted(alternative.scores.items()):
                    t = (claim.key, alternative.name, d)
                    if weight and t in v.take:
                        terms.append(weight * v.take[t])
                        high += max(weight, 0) * _count(alternative)
                        low += min(weight, 0) * _count(alternative)
    return Level("preferences", terms, low, high)


def order(v: Variables) -> Level:
    """Minus the index of the chosen subrequest, summed over requests with ``firstAvailable``."""
    terms: list[cp_model.LinearExprT] = []
    low = 0
    for claim in v.claims:
        for request in claim.requests:
            for i, alternative in enumerate(request.alternatives):
                if i:
                    terms.append(-i * v.alt[(claim.key, alternative.name)])
            low -= len(request.alternatives) - 1
    return Level("order", terms, low, 0)


def _count(alternative: Alternative) -> int:
    return 1 if alternative.mode == AllocationMode.EXACT_COUNT and alternative.count == 1 else len(alternative.eligible)


def stability(v: Variables) -> Level:
    terms: list[cp_model.LinearExprT] = []
    for t, x in v.take.items():
        previous = v.problem.previous.get(t[0])
        if previous and t[2] in previous:
            terms.append(x)
    return Level("stability", terms, 0, len(terms))


def combine(model: cp_model.CpModel, levels: list[Level]) -> list[Level]:
    """Maximize the levels lexicographically with one weighted sum; drop the lowest levels that would overflow."""
    kept = list(levels)
    while kept:
        weight, total = 1, 0
        for level in reversed(kept):
            total += weight * (level.high - level.low)
            weight = total + 1
        if total < LIMIT:
            break
        kept.pop()
    expr: cp_model.LinearExprT = 0
    weight = 1
    for level in reversed(kept):
        expr = expr + weight * sum(level.terms)
        weight = weight * (level.high - level.low + 1)
    model.maximize(expr)
    return kept
