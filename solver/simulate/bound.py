"""A proven ceiling: the most GPU any scheduler could allocate, given the pods it must place.

The question it answers: *how high can allocation at 130% go at all?* The good schedulers
place nearly every pod until the cluster is nearly full (on `default`, FGD and `online` fail
their first single-GPU pod at about 95% arrived). Call a set of arrivals *forced*: all pods
that arrived before some point X, or those a strategy placed before X. Any schedule that places
all forced pods, plus any subset of the others, is a feasible point of this linear program, so
its optimum is an upper bound on the final allocation of every such schedule, and hence on its
allocation at 130% (allocation never falls: pods do not leave):

- each GPU model ``m`` has ``G_m`` GPUs of 1000 milli; a GPU holds either one whole-GPU request
  or a *pattern*, a multiset of share sizes that sum to at most 1000 (all such multisets are
  enumerated);
- ``x[m, p]``: GPUs of model m filled with pattern p; ``w[m]``: GPUs of model m given whole;
- ``y[s, c, m]``: requests of size s (a share, or a whole GPU) from pods whose ``gpu_spec``
  allows the model set c, served on model m; an ``n``-GPU pod counts as n whole requests;
- forced requests of each (s, c) must all be served; the later ones may be;
- maximise the GPU milli served.

What it leaves out, which only makes the bound looser (higher): node CPU and memory, node
boundaries (an ``n``-GPU pod's GPUs need not share a node), the arrival order, and integrality
(the LP is solved, not the integer program).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from solver.simulate.trace import MILLI, Nodes, Pods

BOOL = npt.NDArray[np.bool_]

WHOLE = MILLI


@dataclass(frozen=True)
class Ceiling:
    forced_pods: int  # how many arrivals must be placed
    forced_pct: float  # their GPU request, % of capacity
    allocation: float  # the ceiling, % of GPU capacity
    patterns: int
    seconds: float


def patterns(sizes: list[int], capacity: int = MILLI) -> list[tuple[int, ...]]:
    """Every non-empty multiset of ``sizes`` (ascending) that sums to at most ``capacity``."""
    out: list[tuple[int, ...]] = []

    def grow(start: int, left: int, cur: tuple[int, ...]) -> None:
        for k in range(start, len(sizes)):
            if sizes[k] > left:
                break
            nxt = (*cur, sizes[k])
            out.append(nxt)
            grow(k, left - sizes[k], nxt)

    grow(0, capacity, ())
    return out


def _requests(arrivals: Pods, forced: BOOL) -> tuple[Counter[tuple[int, int]], Counter[tuple[int, int]]]:
    """(size, spec mask) -> count, for the forced pods and for the others."""
    must: Counter[tuple[int, int]] = Counter()
    may: Counter[tuple[int, int]] = Counter()
    for i in range(arrivals.count):
        num, milli = int(arrivals.num_gpu[i]), int(arrivals.milli[i])
        if num == 0 or milli == 0:
            continue
        size, count = (WHOLE, num) if milli >= MILLI else (milli, 1)
        (must if forced[i] else may)[(size, int(arrivals.spec_mask[i]))] += count
    return must, may


def arrived_before(arrivals: Pods, capacity_milli: int, pct: float) -> BOOL:
    """The leading arrivals whose GPU request, summed, stays within ``pct`` % of capacity."""
    cum = np.cumsum(arrivals.gpu_request)
    return np.asarray(cum <= pct / 100.0 * capacity_milli, dtype=np.bool_)


def ceiling(nodes: Nodes, arrivals: Pods, forced: BOOL) -> Ceiling:
    """The LP bound for schedules that place every arrival where ``forced`` is true (and any others)."""
    from ortools.linear_solver import pywraplp

    start = time.perf_counter()
    must, may = _requests(arrivals, forced)
    gpus = {m: int(nodes.gpus[nodes.model == m].sum()) for m in range(len(nodes.models))}
    gpus = {m: g for m, g in gpus.items() if g > 0}
    sizes = sorted({s for s, _ in (*must, *may) if s < WHOLE})
    pats = patterns(sizes)
    solver = pywraplp.Solver.CreateSolver("GLOP")
    inf = solver.infinity()
    served: dict[tuple[int, int], list[object]] = {k: [] for k in (*must, *may)}
    by_model: dict[tuple[int, int], list[tuple[int, object]]] = {}
    for key in served:
        size, mask = key
        for m in gpus:
            if mask >> m & 1:
                var = solver.NumVar(0, inf, "")
                served[key].append(var)
                by_model.setdefault((m, size), []).append((1, var))
    objective = solver.Objective()
    for m, count in gpus.items():
        used = [solver.NumVar(0, inf, "") for _ in pats]
        whole = solver.NumVar(0, inf, "")
        room = solver.Constraint(0, count)
        room.SetCoefficient(whole, 1)
        objective.SetCoefficient(whole, WHOLE)
        for k, p in enumerate(pats):
            room.SetCoefficient(used[k], 1)
            objective.SetCoefficient(used[k], sum(p))
        for size in [*sizes, WHOLE]:
            link = solver.Constraint(0, 0)  # GPUs' slots of this size on model m == requests served there
            for _, var in by_model.get((m, size), []):
                link.SetCoefficient(var, -1)
            if size == WHOLE:
                link.SetCoefficient(whole, 1)
            else:
                for k, p in enumerate(pats):
                    if size in p:
                        link.SetCoefficient(used[k], p.count(size))
    for key, vars_ in served.items():
        lo = must.get(key, 0)
        row = solver.Constraint(lo, lo + may.get(key, 0))
        for var in vars_:
            row.SetCoefficient(var, 1)
    objective.SetMaximization()
    status = solver.Solve()
    capacity = float(nodes.total_gpu_milli)
    forced_milli = float(arrivals.gpu_request[forced].sum())
    if status != pywraplp.Solver.OPTIMAL:
        # the forced pods cannot all be placed even in the relaxation: no schedule places them
        value = float("nan")
    else:
        value = min(objective.Value(), capacity) / capacity * 100
    return Ceiling(
        forced_pods=int(forced.sum()),
        forced_pct=forced_milli / capacity * 100,
        allocation=value,
        patterns=len(pats),
        seconds=time.perf_counter() - start,
    )
