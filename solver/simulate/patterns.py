"""Fill patterns: multisets of GPU shares that fit one GPU (1000 milli), and which ones pack well.

:func:`best_pattern` is the pricing step of column generation (an unbounded knapsack), used by
the ceiling LP (:mod:`gpupolicy.solver.simulate.bound`) and by :func:`efficient_patterns`, which `online`
uses to anticipate the share mix: the patterns of an optimal fractional packing of the shares
seen so far (the fewest GPUs that hold them). A share placed so that its GPU's contents stay a
part of one of those patterns keeps the GPU on track to be filled the way the optimum fills it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np

from gpupolicy.solver.simulate.trace import MILLI

Pattern = tuple[int, ...]  # share sizes, ascending


def best_pattern(sizes: list[int], price: list[float], capacity: int = MILLI) -> tuple[float, tuple[int, ...]]:
    """The multiset of ``sizes`` that fits ``capacity`` with the largest total ``price`` (unbounded knapsack)."""
    if not sizes:
        return 0.0, ()
    unit = math.gcd(capacity, *sizes)
    cap = capacity // unit
    steps = np.array([x // unit for x in sizes], dtype=np.int64)
    gain = np.array(price, dtype=np.float64)
    best = np.zeros(cap + 1)
    pick = np.full(cap + 1, -1, dtype=np.int64)
    for c in range(1, cap + 1):
        fits = steps <= c
        best[c] = best[c - 1]
        if fits.any():
            cand = np.where(fits, best[np.maximum(c - steps, 0)] + gain, -np.inf)
            k = int(np.argmax(cand))
            if cand[k] > best[c] + 1e-9:
                best[c], pick[c] = cand[k], k
    items: list[int] = []
    c = cap
    while c > 0:
        if pick[c] < 0:
            c -= 1
        else:
            items.append(sizes[int(pick[c])])
            c -= int(steps[pick[c]])
    return float(best[cap]), tuple(sorted(items))


def efficient_patterns(counts: Mapping[int, int], capacity: int = MILLI, max_rounds: int = 200) -> list[Pattern]:
    """The patterns an optimal fractional packing of ``counts`` (share size -> pods) uses."""
    return list(optimal_packing(counts, capacity, max_rounds))


def optimal_packing(counts: Mapping[int, int], capacity: int = MILLI, max_rounds: int = 200) -> dict[Pattern, float]:
    """An optimal fractional packing of ``counts`` (share size -> pods): pattern -> GPUs filled so.

    The LP: minimise the GPUs used, ``sum x_p``, such that every size is covered,
    ``sum_p x_p count_p(s) >= counts[s]``; patterns are generated from the duals (a knapsack)
    until none can lower the count, or ``max_rounds`` is reached (then the support found so far).
    """
    from ortools.linear_solver import pywraplp

    sizes = sorted(s for s, n in counts.items() if 0 < s <= capacity and n > 0)
    if not sizes:
        return {}
    solver = pywraplp.Solver.CreateSolver("GLOP")
    cover = {s: solver.Constraint(counts[s], solver.infinity()) for s in sizes}
    objective = solver.Objective()
    objective.SetMinimization()
    columns: dict[Pattern, object] = {}

    def add(p: Pattern) -> None:
        var = solver.NumVar(0, solver.infinity(), "")
        objective.SetCoefficient(var, 1)
        for size, n in Counter(p).items():
            cover[size].SetCoefficient(var, n)
        columns[p] = var

    for size in sizes:
        add((size,) * (capacity // size))
    for round_ in range(max_rounds):
        if solver.Solve() != pywraplp.Solver.OPTIMAL:
            return {}
        duals = [max(cover[s].dual_value(), 0.0) for s in sizes]
        keep = [k for k, d in enumerate(duals) if d > 1e-12]
        value, p = best_pattern([sizes[k] for k in keep], [duals[k] for k in keep], capacity)
        if not p or value <= 1 + 1e-9 or p in columns or round_ == max_rounds - 1:
            break  # the model is still the one just solved
        add(p)
    values = {p: float(var.solution_value()) for p, var in columns.items()}  # type: ignore[attr-defined]
    return {p: x for p, x in values.items() if x > 1e-9}


class OnTrack:
    """GPU contents that are still part of one of the given patterns (a sub-multiset of it)."""

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self.patterns = [Counter(p) for p in patterns]
        self._memo: dict[Pattern, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __contains__(self, contents: Pattern) -> bool:
        hit = self._memo.get(contents)
        if hit is None:
            need = Counter(contents)
            hit = any(all(p[s] >= n for s, n in need.items()) for p in self.patterns)
            self._memo[contents] = hit
        return hit
