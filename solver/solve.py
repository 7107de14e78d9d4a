"""The entry point: run a strategy on a problem, then explain every unplaced claim."""

from __future__ import annotations

from gpupolicy.solver.disrupt import preemption_notes, without_moving
from gpupolicy.solver.explain import explain
from gpupolicy.solver.failing import without_failing
from gpupolicy.solver.firstfit import best_fit, first_fit
from gpupolicy.solver.optimal import Progress, solve_optimal
from gpupolicy.solver.problem import Problem
from gpupolicy.solver.result import Solution, SolveParams

STRATEGIES = ("optimal", "first-fit", "best-fit")


def solve(
    problem: Problem, strategy: str = "optimal", params: SolveParams | None = None, progress: Progress | None = None
) -> Solution:
    params = params or SolveParams()
    if strategy == "optimal":
        solution = solve_optimal(problem, params, progress)
    elif strategy == "first-fit":
        solution = first_fit(without_moving(problem))
    elif strategy == "best-fit":
        solution = best_fit(without_moving(problem))
    else:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy != "first-fit":
        problem = without_failing(problem)  # what they solved: explanations name the devices set aside
    problem = without_moving(problem)  # a moved claim's replacement is part of a move, not a claim to explain
    if params.explain:
        solution.unplaced = explain(problem, solution, params)
        preemption_notes(problem, solution)
    else:
        solution.unplaced = {
            c.key: [solution.blocked[c.key]] if c.key in solution.blocked else []
            for c in problem.claims
            if c.key not in solution.placements
        }
    return solution
