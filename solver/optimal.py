"""The optimal strategy: one CP-SAT model over every pending claim.

Build the variables, add each constraint family, fold the objective levels, hint the first-fit
answer (so the time limit always leaves something at least as good as first-fit), solve with explicit
parameters, and read the placements back. ``workers=1`` with a fixed seed is reproducible.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ortools.sat.python import cp_model

from gpupolicy.solver import aggregate
from gpupolicy.solver.disrupt import settle, without_idle_moves, without_moving
from gpupolicy.solver.failing import without_failing
from gpupolicy.solver.firstfit import best_fit, first_fit, share_id
from gpupolicy.solver.model import constraints, devices, objective, placement, preempt, quota
from gpupolicy.solver.model.variables import Variables, create
from gpupolicy.solver.problem import ClaimKey, DeviceResult, NodeName, Problem
from gpupolicy.solver.result import Moved, Placement, Preempted, Solution, SolveParams
from gpupolicy.solver.state import Usage
from gpupolicy.solver.victims import victim_units

Progress = Callable[[str], None]


def build_model(problem: Problem) -> tuple[Variables, list[objective.Level]]:
    model = cp_model.CpModel()
    claims = [c for c in problem.claims if c.error is None]
    broken = {c.gang or c.key for c in problem.claims if c.error is not None}
    claims = [c for c in claims if (c.gang or c.key) not in broken]
    units = victim_units(problem)
    movers = {k for u in units if u.movable for k in u.keys}
    claims = [c for c in claims if not c.moving or c.key in movers]  # a replacement exists only to move
    usage = Usage.from_existing(problem, skip={k for u in units for k in u.keys})
    v = create(model, problem, usage, claims, units)
    terms = placement.build(v)
    kept, disruption = preempt.build(v)
    high = sum(c.priority for c in claims) + sum(u.weight for u in units)
    levels = [objective.Level("placement", terms + kept, 0, high), *(lv for lv in disruption if lv.terms)]
    devices.build(v)
    constraints.build(v)
    quota.build(v)
    levels += [objective.order(v), objective.fragmentation(v), objective.preferences(v), objective.stability(v)]
    return v, levels


def hint(v: Variables, baseline: Solution) -> None:
    taken = {(k, r.request, r.device) for k, p in baseline.placements.items() for r in p.results}
    for key, var in v.placed.items():
        v.model.add_hint(var, key in baseline.placements)
    for (key, node), var in v.node.items():
        p = baseline.placements.get(key)
        v.model.add_hint(var, p is not None and p.node == node)
    for (key, alt), var in v.alt.items():
        p = baseline.placements.get(key)
        v.model.add_hint(var, p is not None and any(r.request == alt for r in p.results))
    for t, var in v.take.items():
        v.model.add_hint(var, t in taken)
    for d, var in v.used.items():
        held = any(t in taken for t in v.by_device.get(d, []) if t not in v.admin)
        v.model.add_hint(var, held or d in v.victim_holds)
    for var in v.kept.values():
        v.model.add_hint(var, True)  # the baseline gives nothing up
    for var in v.moved.values():
        v.model.add_hint(var, False)


LARGE_MODEL = 20_000  # placement variables; above it presolve is kept short (it costs more than it saves)


def solver_for(params: SolveParams, time_limit: float, size: int = 0) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.01, time_limit)
    solver.parameters.num_workers = max(1, params.workers)
    solver.parameters.random_seed = params.seed
    if size > LARGE_MODEL:
        solver.parameters.symmetry_level = 0
        solver.parameters.max_presolve_iterations = 1
    return solver


def extract(v: Variables, solver: cp_model.CpSolver, solution: Solution) -> None:
    for claim in v.claims:
        key = claim.key
        if not solver.boolean_value(v.placed[key]):
            continue
        node = next(n for n in v.nodes_of[key] if solver.boolean_value(v.node[(key, n)]))
        solution.placements[key] = Placement(key, node, tuple(_results(v, solver, key)))
    for unit in v.units:
        if solver.boolean_value(v.kept[unit.name]):
            continue
        moved = unit.name in v.moved and solver.boolean_value(v.moved[unit.name])
        for existing in unit.claims:
            if moved:
                solution.moved[existing.claim] = Moved(existing.claim, unit.name, unit.pods, existing.results, ())
            else:
                solution.preempted[existing.claim] = Preempted(existing.claim, existing.level, unit.name, unit.pods, ())


def _results(v: Variables, solver: cp_model.CpSolver, key: ClaimKey) -> list[DeviceResult]:
    claim = v.problem.claim_index[key]
    out: list[DeviceResult] = []
    for request in claim.requests:
        for alternative in request.alternatives:
            for d in alternative.eligible:
                t = (key, alternative.name, d)
                if t not in v.take or not solver.boolean_value(v.take[t]):
                    continue
                multi = v.problem.devices[d].multi_allocatable and not alternative.admin_access
                out.append(
                    DeviceResult(
                        request=alternative.name,
                        device=d,
                        admin_access=alternative.admin_access,
                        share_id=share_id(key, alternative.name, d) if multi else None,
                        consumed=v.consumed[t] if multi else {},
                        tolerations=alternative.tolerations,
                    )
                )
    return out


MAX_TAKES = 400_000  # above this many placement variables the full model is not built


def model_size(problem: Problem) -> int:
    return sum(len(a.eligible) for c in problem.claims for r in c.requests for a in r.alternatives)


def _too_large(problem: Problem, size: int) -> Solution:
    """Best of the two baselines, for problems the full model cannot hold (and that do not aggregate). They give
    nothing up: no preemption, no moves."""
    started = time.perf_counter()
    problem = without_moving(problem)
    weights = {c.key: c.priority for c in problem.claims}
    candidates = [first_fit(problem), best_fit(problem)]
    best = max(candidates, key=lambda s: (s.placed_weight(weights), s.strategy == "best-fit"))
    best.strategy = "optimal"
    best.status = f"HEURISTIC (model too large: {size} placement variables; best of first-fit and best-fit)"
    best.wall_s = time.perf_counter() - started
    return best


def solve_optimal(problem: Problem, params: SolveParams, progress: Progress | None = None) -> Solution:
    problem = without_idle_moves(without_failing(problem))
    units = victim_units(problem)
    if params.aggregate and not units and aggregate.applicable(problem):
        return aggregate.solve_aggregated(problem, params)
    size = model_size(problem)
    if size > MAX_TAKES:
        return _too_large(problem, size)
    solution = _two_stage(problem, params)
    if units:
        settle(problem, solution)
    return solution


def _keep_hints(v: Variables, solver: cp_model.CpSolver) -> None:
    v.model.clear_hints()
    for container in (v.placed, v.node, v.alt, v.take, v.used, v.kept, v.moved):
        for var in container.values():
            v.model.add_hint(var, solver.boolean_value(var))


def _two_stage(problem: Problem, params: SolveParams) -> Solution:
    """Placement first (half the time), then the lower levels with placement held at its best."""
    started = time.perf_counter()
    deadline = started + params.time_limit_s
    baseline = first_fit(without_moving(problem))  # everything a solve may give up stays, as in the cluster
    v, levels = build_model(problem)
    placement_expr = sum(levels[0].terms)
    v.model.maximize(placement_expr)
    hint(v, baseline)
    first = solver_for(params, 0.5 * (deadline - time.perf_counter()), len(v.take))
    status = first.solve(v.model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        baseline.strategy = "optimal"
        baseline.status = f"FALLBACK_FIRST_FIT ({first.status_name(status)})"
        baseline.wall_s = time.perf_counter() - started
        return baseline
    first_optimal = status == cp_model.OPTIMAL
    v.model.add(placement_expr >= round(first.objective_value))
    _keep_hints(v, first)
    kept = objective.combine(v.model, levels[1:])
    second = solver_for(params, deadline - time.perf_counter(), len(v.take))
    status2 = second.solve(v.model)
    solver, final = (second, status2) if status2 in (cp_model.OPTIMAL, cp_model.FEASIBLE) else (first, status)
    solution = Solution(strategy="optimal")
    extract(v, solver, solution)
    proven = first_optimal and final == cp_model.OPTIMAL and solver is second
    solution.status = "OPTIMAL" if proven else "FEASIBLE"
    solution.proven_optimal = proven
    solution.objective = {lv.name: int(sum(solver.value(t) for t in lv.terms)) for lv in [levels[0], *kept]}
    solution.wall_s = time.perf_counter() - started
    return solution


__all__ = ["NodeName", "build_model", "solve_optimal"]
