"""Preemption and defragmentation: which victim units (see :mod:`gpupolicy.solver.victims`) keep their devices.

Per unit ``kept[u]`` (its claims keep what they hold) and, for a movable unit, ``moved[u]`` (it is evicted and its
claims' replacements, the problem's ``moving`` claims, are placed: ``placed[replacement] == moved[u]``); neither
means preempted, which only a preemptable unit may be. Constraints:

- a disruption budget counts the pods of every unit not kept: ``sum pods_b(u) * (1 - kept[u]) <= allowed(b)``;
- ``max_moves`` bounds the pods moved;
- *never for an equal or lower priority*: for every level ``q`` of a preemptable unit, what the claims of level
  ``<= q`` take (pending and replacements), plus every preemptable unit of level ``>= q`` as if it stayed, plus the
  other units that do stay, must fit every device, capacity and shared counter those units of level ``>= q`` hold.
  So what an eviction frees goes only to claims of a strictly higher level (conservative: their leftovers too wait
  for the next solve).

Objective terms: ``weight(u) * kept[u]`` joins the placement level (with the replacements' own placement terms a
move is neutral there, a preemption costs the unit's weight); then the evictions level (preempted units, each
weighted by its tier weight times its pods: lowest priority first, then fewest pods) and the moves level (pods moved).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from ortools.sat.python import cp_model

from gpupolicy.solver.model.objective import Level
from gpupolicy.solver.model.variables import Variables
from gpupolicy.solver.problem import DeviceIndex
from gpupolicy.solver.victims import VictimUnit

CounterKey = tuple[str, str, str, str]
Holders = Callable[[DeviceIndex], list[cp_model.LinearExprT]]


def build(v: Variables) -> tuple[list[cp_model.LinearExprT], list[Level]]:
    """Constraints; returns the placement terms of kept units, and the evictions and moves levels."""
    m = v.model
    for unit in v.units:
        kept = v.kept[unit.name]
        if unit.movable:
            moved = v.moved[unit.name]
            m.add(kept + moved <= 1) if unit.preemptable else m.add(kept + moved == 1)
            for key in unit.keys:
                placed = v.placed.get(key)
                if placed is None:  # its replacement cannot be placed at all (an error): it cannot move
                    m.add(moved == 0)
                else:
                    m.add(placed == moved)
        elif not unit.preemptable:
            m.add(kept == 1)
    _budgets(v)
    _max_moves(v)
    for level in sorted({u.level for u in v.units if u.preemptable}):
        _not_for_lower(v, level)
    return [u.weight * v.kept[u.name] for u in v.units], [_evictions(v), _moves(v)]


def _evicted(v: Variables, unit: VictimUnit) -> cp_model.LinearExprT:
    moved = v.moved.get(unit.name)
    return 1 - v.kept[unit.name] - (moved if moved is not None else 0)


def _budgets(v: Variables) -> None:
    per_budget: dict[str, list[tuple[int, VictimUnit]]] = defaultdict(list)
    for unit in v.units:
        for budget, pods in unit.budgets.items():
            per_budget[budget].append((pods, unit))
    for budget, members in sorted(per_budget.items()):
        allowed = max(0, v.problem.budgets.get(budget, 0))
        if sum(p for p, _ in members) > allowed:
            v.model.add(sum(p * (1 - v.kept[u.name]) for p, u in members) <= allowed)


def _max_moves(v: Variables) -> None:
    limit = v.problem.disruption.max_moves
    movers = [(len(u.pods), v.moved[u.name]) for u in v.units if u.name in v.moved]
    if limit is not None and movers and sum(p for p, _ in movers) > limit:
        v.model.add(sum(p * x for p, x in movers) <= max(0, limit))


def _evictions(v: Variables) -> Level:
    """Minus the preempted units, each weighted by its tier weight times its pods."""
    terms: list[cp_model.LinearExprT] = []
    low = 0
    for unit in v.units:
        if not unit.preemptable:
            continue
        cost = max(e.weight for e in unit.claims) * max(1, len(unit.pods))
        terms.append(-cost * _evicted(v, unit))
        low -= cost
    return Level("evictions", terms, low, 0)


def _moves(v: Variables) -> Level:
    terms: list[cp_model.LinearExprT] = [-len(u.pods) * v.moved[u.name] for u in v.units if u.name in v.moved]
    return Level("moves", terms, -sum(len(u.pods) for u in v.units if u.name in v.moved), 0)


def _factor(v: Variables, unit: VictimUnit, level: int) -> cp_model.LinearExprT:
    """How much of ``unit``'s old allocation counts in the world of claims of level <= ``level``."""
    if unit.preemptable and unit.level >= level:
        moved = v.moved.get(unit.name)
        return 1 - moved if moved is not None else 1
    return v.kept[unit.name]


def _not_for_lower(v: Variables, level: int) -> None:
    """What claims of level <= ``level`` take must fit as if the preemptable units of level >= ``level`` stayed."""
    problem = v.problem
    by_name = {u.name: u for u in v.units}
    protected = {d for d, holds in v.victim_holds.items() if any(_shields(by_name[n], level) for n, _ in holds)}
    if not protected:
        return
    low = {c.key for c in v.claims if c.level <= level}
    takes: dict[DeviceIndex, list[tuple[str, cp_model.IntVar]]] = defaultdict(list)
    for t, x in v.take.items():
        if t[0] in low and t not in v.admin and t not in v.blocked:
            takes[t[2]].append((t[1], x))

    def holders(d: DeviceIndex) -> list[cp_model.LinearExprT]:
        own: list[cp_model.LinearExprT] = [x for _, x in takes.get(d, [])]
        return own + [_factor(v, by_name[n], level) for n, _ in v.victim_holds.get(d, [])]

    counters: set[CounterKey] = set()
    for d in sorted(protected):
        device = problem.devices[d]
        counters |= set(v.usage.device_counters(d))
        if not device.multi_allocatable:
            v.model.add(sum(holders(d)) <= 1)
            continue
        for name, capacity in device.capacity.items():
            left = capacity.value - v.usage.capacity.get((d, name), 0)
            amounts: list[cp_model.LinearExprT] = []
            for t, x in v.take.items():
                if t[2] == d and t[0] in low and t not in v.admin and t not in v.blocked:
                    amounts.append(v.consumed[t].get(name, 0) * x)
            for n, r in v.victim_holds.get(d, []):
                amounts.append(r.consumed.get(name, 0) * _factor(v, by_name[n], level))
            v.model.add(sum(amounts) <= left)
    _counters(v, level, counters, holders)


def _shields(unit: VictimUnit, level: int) -> bool:
    return unit.preemptable and unit.level >= level


def _counters(v: Variables, level: int, keys: set[CounterKey], holders: Holders) -> None:
    if not keys:
        return
    problem = v.problem
    users: dict[CounterKey, list[tuple[int, DeviceIndex]]] = defaultdict(list)
    for d in v.used:
        if v.usage.in_use(d):
            continue
        for key, amount in v.usage.device_counters(d).items():
            if key in keys:
                users[key].append((amount, d))
    busy: dict[DeviceIndex, cp_model.LinearExprT] = {}
    for key in sorted(users):
        for _, d in users[key]:
            if d not in busy:
                busy[d] = _busy(v, d, level, holders)
        counter_set = problem.counter_index.get(key[:3])
        limit = counter_set.counters.get(key[3], 0) if counter_set else 0
        left = limit - v.usage.counters.get(key, 0)
        v.model.add(sum(a * busy[d] for a, d in users[key]) <= left)


def _busy(v: Variables, d: DeviceIndex, level: int, holders: Holders) -> cp_model.LinearExprT:
    """Whether device ``d`` is held in the world of level ``level``: a sum for an exclusive device (at most one
    holder counts, more is the case the constraint forbids), a flag above every holder for a shared one."""
    terms = holders(d)
    if not v.problem.devices[d].multi_allocatable:
        return sum(terms) if terms else 0
    if not terms:
        return 0
    flag = v.model.new_bool_var(f"busy[{level},{v.problem.devices[d].label}]")
    for term in terms:
        v.model.add(flag >= term)
    return flag
