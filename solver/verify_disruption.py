"""Checks of what a solve gives up (preempted and moved allocations), without the solver.

- only allocations of a victim unit are given up, whole units at a time: preempted only when the unit is
  preemptable, moved only when it is movable, and a moved claim is placed again (its replacement) while a
  replacement is placed only for a moved claim;
- every preempted claim names what it was evicted for, all of a strictly higher priority;
- disruption budgets and the limit on moves hold;
- *never for an equal or lower priority*: for every level ``q`` of a preempted unit, the claims of level ``<= q``
  (pending and replacements), plus the preempted units of level ``>= q`` as if they had stayed, plus everything that
  stays, fit the devices;
- *never more than needed*: giving back any single unit (it stays, and a moved one's replacement is not placed)
  breaks one of the rules above.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from gpupolicy.solver.problem import ClaimKey, DeviceResult, Problem
from gpupolicy.solver.result import Solution
from gpupolicy.solver.verify_resources import resource_errors
from gpupolicy.solver.victims import VictimUnit, victim_units


def check_disruption(problem: Problem, solution: Solution) -> list[str]:
    if not solution.preempted and not solution.moved and not any(c.moving for c in problem.claims):
        return []
    units = victim_units(problem)
    errors = _shape(problem, solution, units)
    if errors:
        return errors
    errors += _rules(problem, solution, units)
    if errors:
        return errors
    return _minimal(problem, solution, units)


def _shape(problem: Problem, solution: Solution, units: tuple[VictimUnit, ...]) -> list[str]:
    errors: list[str] = []
    by_key = {k: u for u in units for k in u.keys}
    for key in sorted(solution.preempted.keys() | solution.moved.keys()):
        unit = by_key.get(key)
        if unit is None:
            errors.append(f"{key}: given up, but it is not an allocation this solve may give up")
            continue
        if key in solution.preempted and key in solution.moved:
            errors.append(f"{key}: both preempted and moved")
        if key in solution.preempted and not unit.preemptable:
            errors.append(f"{key}: preempted, but nothing pending has a higher priority than unit {unit.name}")
        if key in solution.moved and not unit.movable:
            errors.append(f"{key}: moved, but unit {unit.name} is not movable")
        gone = solution.preempted if key in solution.preempted else solution.moved
        if any(k not in gone for k in unit.keys):
            errors.append(f"{key}: unit {unit.name} must be given up whole, {sorted(unit.keys)}")
    moving = {c.key for c in problem.claims if c.moving}
    for key in sorted(moving):
        if (key in solution.placements) != (key in solution.moved):
            errors.append(f"{key}: a moved claim is placed again, and only a moved one")
    for key, preempted in sorted(solution.preempted.items()):
        level = by_key[key].level if key in by_key else preempted.level
        if not preempted.for_:
            errors.append(f"{key}: preempted for nothing")
        for other in preempted.for_:
            claim = problem.claim_index.get(other)
            if other not in solution.placements or claim is None:
                errors.append(f"{key}: preempted for {other}, which is not placed")
            elif claim.level <= level:
                errors.append(f"{key}: priority {level} preempted for {other} of priority {claim.level}")
    return errors


def _given_up(solution: Solution, units: tuple[VictimUnit, ...]) -> list[VictimUnit]:
    gone = solution.preempted.keys() | solution.moved.keys()
    return [u for u in units if u.keys[0] in gone]


def _rules(problem: Problem, solution: Solution, units: tuple[VictimUnit, ...]) -> list[str]:
    """Budgets, the moves limit and the priority rule, for the units ``solution`` gives up."""
    errors: list[str] = []
    gone = _given_up(solution, units)
    spent: Counter[str] = Counter()
    for unit in gone:
        spent.update(unit.budgets)
    for budget, pods in sorted(spent.items()):
        allowed = max(0, problem.budgets.get(budget, 0))
        if pods > allowed:
            errors.append(f"disruption budget {budget}: {pods} pods evicted, it allows {allowed}")
    moves = sum(len(u.pods) for u in gone if u.keys[0] in solution.moved)
    limit = problem.disruption.max_moves
    if limit is not None and moves > limit:
        errors.append(f"{moves} pods moved, at most {limit} allowed")
    preempted = [u for u in gone if u.keys[0] in solution.preempted]
    for level in sorted({u.level for u in preempted}):
        world = list(_world(problem, solution, units, level))
        for _, message in resource_errors(problem, world):
            errors.append(f"preempted for an equal or lower priority (<= {level}): {message}")
    return errors


def _world(
    problem: Problem, solution: Solution, units: tuple[VictimUnit, ...], level: int
) -> Iterable[tuple[ClaimKey, DeviceResult]]:
    """What the claims of level <= ``level`` take, with the preempted units of level >= ``level`` kept."""
    shielded = {k for u in units if u.level >= level for k in u.keys if k in solution.preempted}
    gone = solution.preempted.keys() | solution.moved.keys()
    for existing in problem.existing:
        if existing.claim in shielded or existing.claim not in gone:
            yield from ((existing.claim, r) for r in existing.results)
    for key, placement in solution.placements.items():
        claim = problem.claim_index.get(key)
        if claim is not None and claim.level <= level:
            yield from ((key, r) for r in placement.results)


def _minimal(problem: Problem, solution: Solution, units: tuple[VictimUnit, ...]) -> list[str]:
    errors = []
    for unit in _given_up(solution, units):
        if restorable(problem, solution, unit, units):
            errors.append(f"unit {unit.name} ({', '.join(unit.keys)}) is given up but could stay")
    return errors


def restorable(problem: Problem, solution: Solution, unit: VictimUnit, units: tuple[VictimUnit, ...]) -> bool:
    """Whether ``unit`` could stay where it is, every rule still kept."""
    trial = without(solution, unit)
    if resource_errors(problem, _everything(problem, trial)) or _over_quota(problem, trial):
        return False
    return not _rules(problem, trial, units)


def _over_quota(problem: Problem, solution: Solution) -> bool:
    for quota in problem.quotas:
        used = 0
        for key, results in _claims(problem, solution):
            namespace = key.split("/", 1)[0]
            if namespace == quota.namespace:
                used += (
                    1
                    if quota.resource == "claims"
                    else sum(quota.amount(r, problem.devices[r.device]) for r in results)
                )
        if used > quota.limit:
            return True
    return False


def _claims(problem: Problem, solution: Solution) -> Iterable[tuple[ClaimKey, tuple[DeviceResult, ...]]]:
    gone = solution.preempted.keys() | solution.moved.keys()
    yield from ((e.claim, e.results) for e in problem.existing if e.claim not in gone)
    yield from ((k, p.results) for k, p in solution.placements.items())


def without(solution: Solution, unit: VictimUnit) -> Solution:
    """``solution`` with ``unit`` staying where it is (and a moved unit's replacements not placed)."""
    moved = unit.keys[0] in solution.moved
    out = Solution(solution.strategy, dict(solution.placements), solution.unplaced, solution.blocked)
    out.preempted = {k: p for k, p in solution.preempted.items() if k not in unit.keys}
    out.moved = {k: m for k, m in solution.moved.items() if k not in unit.keys}
    if moved:
        for key in unit.keys:
            out.placements.pop(key, None)
    return out


def _everything(problem: Problem, solution: Solution) -> Iterable[tuple[ClaimKey, DeviceResult]]:
    gone = solution.preempted.keys() | solution.moved.keys()
    for existing in problem.existing:
        if existing.claim not in gone:
            yield from ((existing.claim, r) for r in existing.results)
    for key, placement in solution.placements.items():
        yield from ((key, r) for r in placement.results)
