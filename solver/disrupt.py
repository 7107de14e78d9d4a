"""After a solve that may give allocations up: give back what was not needed, and say who took what.

``settle`` first lets every preempted or moved unit stay where it is when that keeps every rule (the solver's
objective already avoids needless evictions; this makes it hold for a time-limited answer too), most valuable
first. Then, for each unit still given up, it finds what it frees that the plan uses: the devices, capacities and
shared counters that would overflow were it to stay, and the placed claims on them (``for_``), with a sentence
for ``--explain``.
"""

from __future__ import annotations

import dataclasses

from gpupolicy.solver.problem import ClaimKey, Problem
from gpupolicy.solver.result import Reason, Solution
from gpupolicy.solver.verify_disruption import restorable, without
from gpupolicy.solver.verify_resources import resource_errors, uses
from gpupolicy.solver.victims import VictimUnit, victim_units


def without_moving(problem: Problem) -> Problem:
    """The problem with nothing to move: what the baselines solve (they give nothing up)."""
    if not any(c.moving for c in problem.claims):
        return problem
    return dataclasses.replace(problem, claims=tuple(c for c in problem.claims if not c.moving))


def without_idle_moves(problem: Problem) -> Problem:
    """The problem without the replacements of claims that cannot move (not defragmenting, or not movable)."""
    movers = {k for u in victim_units(problem) if u.movable for k in u.keys}
    if all(not c.moving or c.key in movers for c in problem.claims):
        return problem
    return dataclasses.replace(problem, claims=tuple(c for c in problem.claims if not c.moving or c.key in movers))


def settle(problem: Problem, solution: Solution) -> None:
    units = victim_units(problem)
    changed = True
    while changed:
        changed = False
        gone = solution.preempted.keys() | solution.moved.keys()
        for unit in sorted(units, key=lambda u: (-u.level, -u.weight, u.name)):
            if unit.keys[0] in gone and restorable(problem, solution, unit, units):
                trial = without(solution, unit)
                solution.placements, solution.preempted, solution.moved = trial.placements, trial.preempted, trial.moved
                changed = True
                break
    for unit in units:
        if unit.keys[0] in solution.preempted or unit.keys[0] in solution.moved:
            _name_beneficiaries(problem, solution, unit)


def _name_beneficiaries(problem: Problem, solution: Solution, unit: VictimUnit) -> None:
    trial = without(solution, unit)
    everything = [(e.claim, r) for e in problem.existing for r in e.results
                  if e.claim not in trial.preempted and e.claim not in trial.moved]  # fmt: skip
    everything += [(k, r) for k, p in trial.placements.items() for r in p.results]
    overflows = [resource for resource, _ in resource_errors(problem, everything)]
    takers: set[ClaimKey] = set()
    for key, placement in trial.placements.items():
        if key in unit.keys:
            continue
        if any(uses(problem, r, res) for r in placement.results for res in overflows):
            takers.add(key)
    preempted = unit.keys[0] in solution.preempted
    if preempted:
        takers = {k for k in takers if problem.claim_index[k].level > unit.level}
    for_ = tuple(sorted(takers))
    why = _why(problem, solution, unit, for_, overflows, preempted)
    for key in unit.keys:
        if preempted:
            solution.preempted[key] = dataclasses.replace(solution.preempted[key], for_=for_, why=why)
        else:
            solution.moved[key] = dataclasses.replace(solution.moved[key], for_=for_, why=why)


def describe(problem: Problem, overflows: list[tuple[object, ...]]) -> str:
    """Overflowing resources in a few words: devices by name, capacities by device, MIG memory slots by GPU."""
    parts: list[str] = []
    slots: dict[str, list[int]] = {}
    other: dict[str, list[str]] = {}
    for resource in overflows:
        if resource[0] == "device":
            parts.append(problem.devices[int(str(resource[1]))].label)
        elif resource[0] == "capacity":
            parts.append(f"{str(resource[2]).rsplit('/', 1)[-1]} of {problem.devices[int(str(resource[1]))].label}")
        else:
            gpu = f"{resource[1]}/{resource[2]}/{resource[3]}"
            name = str(resource[4])
            if name.startswith("memory-slice-") and name.removeprefix("memory-slice-").isdigit():
                slots.setdefault(gpu, []).append(int(name.removeprefix("memory-slice-")))
            else:
                other.setdefault(gpu, []).append(name)
    for gpu, numbers in sorted(slots.items()):
        parts.append(f"memory slot(s) {','.join(map(str, sorted(numbers)))} of {gpu}")
    for gpu, names in sorted(other.items()):
        if gpu not in slots:
            parts.append(f"{', '.join(sorted(names))} of {gpu}")
    return "; ".join(parts) or "nothing"


def _why(
    problem: Problem,
    solution: Solution,
    unit: VictimUnit,
    for_: tuple[ClaimKey, ...],
    overflows: list[tuple[object, ...]],
    preempted: bool,
) -> str:
    held = sorted({problem.devices[r.device].label for e in unit.claims for r in e.results})
    pods = ", ".join(unit.pods) or "no pod"
    top = max((problem.claim_index[k].level for k in for_), default=unit.level)
    takers = ", ".join(for_) or "nothing"
    if preempted:
        text = (
            f"priority {unit.level} < {top}: evicting {pods} frees {', '.join(held)} for {takers}; had it stayed, "
            f"{describe(problem, overflows)} would be needed by both. Victims are taken lowest priority first, then "
            f"fewest pods, and none that could stay"
        )
    else:
        new = sorted({problem.devices[r.device].label for k in unit.keys if k in solution.placements
                      for r in solution.placements[k].results})  # fmt: skip
        text = (
            f"movable: {pods} moves from {', '.join(held)} to {', '.join(new)}, making room for {takers}; "
            f"the fewest moves that place it"
        )
    if unit.budgets:
        spent = ", ".join(f"{b} (allows {problem.budgets.get(b, 0)})" for b in sorted(unit.budgets))
        text += f"; its pods count against {spent}"
    return text


def preemption_notes(problem: Problem, solution: Solution) -> None:
    """With preemption on, each unplaced claim's reasons end with why preempting did not place it (code
    ``preemption_not_enough``): no allocation of a lower priority, budgets that allow no eviction, or evicting
    every allowed lower-priority allocation would still not make room (or would cost a higher priority)."""
    if not problem.disruption.preempt:
        return
    units = victim_units(problem)
    for claim in problem.claims:
        if claim.moving or claim.key in solution.placements or claim.key not in solution.unplaced:
            continue
        lower = [u for u in units if u.preemptable and u.level < claim.level]
        if not lower:
            why = f"no allocation of a priority below {claim.level} can be preempted"
        else:
            spent = {b for u in lower for b in u.budgets}
            blocked = [u for u in lower if any(problem.budgets.get(b, 0) <= 0 for b in u.budgets)]
            why = f"{len(lower)} allocation(s) of a lower priority could be preempted"
            if blocked:
                names = ", ".join(sorted(b for b in spent if problem.budgets.get(b, 0) <= 0))
                why += f", {len(blocked)} of them guarded by PodDisruptionBudgets that allow no disruption ({names})"
            why += "; evicting the others would not leave room for it in this plan"
        solution.unplaced[claim.key].append(Reason("preemption_not_enough", why))
