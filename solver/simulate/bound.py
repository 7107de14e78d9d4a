"""A proven ceiling: the most GPU any scheduler could allocate, given the pods it must place.

The question it answers: *how high can allocation at 130% go at all?* The good schedulers
place nearly every pod until the cluster is nearly full (on `default`, FGD and `online` fail
their first single-GPU pod at about 95% arrived). Call a set of arrivals *forced*: all pods
that arrived before some point X, or those a strategy placed before X. Any schedule that places
all forced pods, plus any subset of the others, is a feasible point of this linear program, so
its optimum is an upper bound on the final allocation of every such schedule, and hence on its
allocation at 130% (allocation never falls: pods do not leave):

- nodes are grouped by type (model, GPU count, CPU, memory); pods by class (GPU count, per-GPU
  share, ``gpu_spec``, CPU, memory);
- a GPU holds either one whole-GPU request or a *pattern*, a multiset of share sizes that sum to
  at most 1000 milli (generated as needed, see :func:`ceiling`); ``x[t, p]``: GPUs of node type t
  filled with pattern p, ``w[t]``: GPUs of type t given whole;
- ``y[c, t]``: pods of class c placed on nodes of type t, allowed when one such node could host
  the pod alone (model in its ``gpu_spec``, enough GPUs, CPU and memory); an ``n``-GPU pod fills
  n whole-GPU slots; the pods' CPU and memory on type t stay within the type's total;
- the forced pods of each class must all be placed; the others may be;
- maximise the GPU milli in use.

What it leaves out, which only makes the bound looser (higher): CPU and memory node by node (only
each node type's total counts), node boundaries for GPUs (an ``n``-GPU pod's GPUs need not share
a node), the arrival order, and integrality (the LP is solved, not the integer program).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gpupolicy.solver.simulate.patterns import best_pattern
from gpupolicy.solver.simulate.trace import MILLI, Nodes, Pods

BOOL = npt.NDArray[np.bool_]

WHOLE = MILLI


@dataclass(frozen=True)
class Ceiling:
    forced_pods: int  # how many arrivals must be placed
    forced_pct: float  # their GPU request, % of capacity
    allocation: float  # the ceiling, % of GPU capacity
    patterns: int  # fill patterns the column generation used
    seconds: float
    rounds: int = 0
    exact: bool = True  # False: generation stopped early; the value is a looser (still valid) bound
    fill: dict[tuple[int, ...], float] = field(default_factory=dict)  # the optimum's GPUs per fill pattern


PodClass = tuple[int, int, int, int, int]  # GPU count, per-GPU size, spec mask, CPU milli, memory MiB


def _classes(arrivals: Pods, forced: BOOL) -> dict[PodClass, list[int]]:
    """Each pod class -> [forced pods, other pods]."""
    out: dict[PodClass, list[int]] = {}
    for c, idx in _class_index(arrivals).items():
        must = int(forced[idx].sum())
        out[c] = [must, len(idx) - must]
    return out


def _class_of(arrivals: Pods, i: int) -> PodClass:
    num, milli = int(arrivals.num_gpu[i]), int(arrivals.milli[i])
    size = WHOLE if num and milli >= MILLI else (milli if num else 0)
    return (num, size, int(arrivals.spec_mask[i]), int(arrivals.cpu[i]), int(arrivals.mem[i]))


NodeType = tuple[int, int, int, int]  # model (-1: no GPU), GPUs, CPU milli, memory MiB per node


def _node_types(nodes: Nodes) -> dict[NodeType, int]:
    out: dict[NodeType, int] = {}
    for k in range(nodes.count):
        key = (int(nodes.model[k]), int(nodes.gpus[k]), int(nodes.cpu[k]), int(nodes.mem[k]))
        out[key] = out.get(key, 0) + 1
    return out


def _fits(c: PodClass, t: NodeType) -> bool:
    num, _, mask, cpu, mem = c
    model, gpus, node_cpu, node_mem = t
    if cpu > node_cpu or mem > node_mem:
        return False
    return num == 0 or (model >= 0 and bool(mask >> model & 1) and gpus >= num)


def placeable(nodes: Nodes, arrivals: Pods) -> BOOL:
    """The arrivals that some node could host when empty (the others no schedule can place)."""
    types = list(_node_types(nodes))
    out = np.zeros(arrivals.count, dtype=np.bool_)
    for c, idx in _class_index(arrivals).items():
        out[idx] = any(_fits(c, t) for t in types)
    return out


def _class_index(arrivals: Pods) -> dict[PodClass, list[int]]:
    out: dict[PodClass, list[int]] = {}
    for i in range(arrivals.count):
        out.setdefault(_class_of(arrivals, i), []).append(i)
    return out


def arrived_before(arrivals: Pods, capacity_milli: int, pct: float) -> BOOL:
    """The leading arrivals whose GPU request, summed, stays within ``pct`` % of capacity."""
    cum = np.cumsum(arrivals.gpu_request)
    return np.asarray(cum <= pct / 100.0 * capacity_milli, dtype=np.bool_)


LEFT_OUT = 1e7  # objective cost of a forced pod left out (more than any pod's GPU milli can gain)


@dataclass
class _TypeRows:
    """The rows one node type adds: its GPU count and one slot-balance row per share size."""

    room: Any
    gpus: int  # GPUs of this type in the cluster
    link: dict[int, Any]
    sizes: list[int]
    seen: dict[tuple[int, ...], Any]  # pattern -> its variable


def ceiling(nodes: Nodes, arrivals: Pods, forced: BOOL, max_rounds: int = 1000, time_limit: float = 60.0) -> Ceiling:
    """The LP bound for schedules that place every arrival where ``forced`` is true (and any others).

    Patterns are generated as needed (column generation): start from one pattern per share size
    (as many copies as fit), solve, and add, per node type, the pattern whose reduced profit under
    the LP's duals is largest, until no pattern has a positive one. Then the LP is the same as the
    LP over every pattern. If ``max_rounds`` or ``time_limit`` stops it first, the result is the
    Lagrangian bound of the last round: still an upper bound, looser, with ``exact`` False. A
    forced pod may be left out at a prohibitive cost; if the optimum still leaves one out, no
    schedule can place them all (the ceiling is NaN).
    """
    from ortools.linear_solver import pywraplp

    start = time.perf_counter()
    classes = _classes(arrivals, forced)
    types = _node_types(nodes)
    solver = pywraplp.Solver.CreateSolver("GLOP")
    inf = solver.infinity()
    objective = solver.Objective()
    served: dict[PodClass, list[Any]] = {c: [] for c in classes}
    rows: list[_TypeRows] = []

    def add_pattern(r: _TypeRows, p: tuple[int, ...]) -> None:
        var = solver.NumVar(0, inf, "")
        objective.SetCoefficient(var, sum(p))
        r.room.SetCoefficient(var, 1)
        for size in set(p):
            r.link[size].SetCoefficient(var, p.count(size))
        r.seen[p] = var

    for t, count in types.items():
        here = [c for c in classes if _fits(c, t)]
        y = {c: solver.NumVar(0, inf, "") for c in here}
        for c, var in y.items():
            served[c].append(var)
        cpu = solver.Constraint(0, count * t[2])  # CPU and memory of this node type, summed over its nodes
        mem = solver.Constraint(0, count * t[3])
        for c, var in y.items():
            cpu.SetCoefficient(var, c[3])
            mem.SetCoefficient(var, c[4])
        if t[1] == 0:
            continue
        sizes = sorted({c[1] for c in here if c[0] and c[1] < WHOLE})
        whole = solver.NumVar(0, inf, "")
        room = solver.Constraint(0, count * t[1])
        room.SetCoefficient(whole, 1)
        objective.SetCoefficient(whole, WHOLE)
        link = {}
        for size in [*sizes, WHOLE]:
            link[size] = solver.Constraint(0, 0)  # slots of this size on these GPUs == the requests served there
            for c, var in y.items():
                if c[0] and c[1] == size:
                    link[size].SetCoefficient(var, -c[0])
        link[WHOLE].SetCoefficient(whole, 1)
        r = _TypeRows(room, count * t[1], link, sizes, {})
        rows.append(r)
        for size in sizes:
            add_pattern(r, (size,) * (MILLI // size))
    left_out = []
    for c, vars_ in served.items():
        lo, extra = classes[c]
        row = solver.Constraint(-inf, lo + extra)
        for var in vars_:
            row.SetCoefficient(var, 1)
        if lo:
            short = solver.NumVar(0, lo, "")  # forced pods of this class left out
            objective.SetCoefficient(short, -LEFT_OUT)
            floor = solver.Constraint(lo, inf)
            floor.SetCoefficient(short, 1)
            for var in vars_:
                floor.SetCoefficient(var, 1)
            left_out.append(short)
    objective.SetMaximization()
    rounds, deadline = 0, start + time_limit
    while True:
        rounds += 1
        if solver.Solve() != pywraplp.Solver.OPTIMAL:
            raise RuntimeError("the ceiling LP did not solve")  # bounded and feasible by construction
        found = objective.Value()
        short = sum(v.solution_value() for v in left_out)
        new = []  # read every dual before the model changes
        lift = 0.0  # how much the patterns not yet added could still raise the optimum, at most
        for r in rows:
            price = [size - r.link[size].dual_value() for size in r.sizes]
            keep = [k for k, v in enumerate(price) if v > 1e-9]
            gain, p = best_pattern([r.sizes[k] for k in keep], [price[k] for k in keep])
            profit = gain - r.room.dual_value()
            if p and profit > 1e-6:
                lift += r.gpus * profit
                if p not in r.seen:
                    new.append((r, p))
        if not new or rounds >= max_rounds or time.perf_counter() > deadline:
            break
        for r, p in new:
            add_pattern(r, p)
    # Weak duality: raising each node type's GPU-count dual by the best pattern's reduced profit
    # makes the duals feasible for every pattern, so ``found + lift`` bounds the full LP even when
    # the generation stopped early (it equals ``found`` once nothing is left to add).
    exact = not new
    bound = found + (lift if new else 0.0)
    capacity = float(nodes.total_gpu_milli)
    forced_milli = float(arrivals.gpu_request[forced].sum())
    if (exact and short > 1e-6) or bound < 0:
        value = float("nan")  # even the relaxation cannot place every forced pod: no schedule does
    else:
        value = min(bound + (LEFT_OUT * short if exact else 0.0), capacity) / capacity * 100
    fill: dict[tuple[int, ...], float] = {}
    for r in rows:
        for p, var in r.seen.items():
            if var.solution_value() > 1e-9:
                fill[p] = fill.get(p, 0.0) + float(var.solution_value())
    return Ceiling(
        fill=fill,
        rounds=rounds,
        exact=exact,
        forced_pods=int(forced.sum()),
        forced_pct=forced_milli / capacity * 100,
        allocation=value,
        patterns=sum(len(r.seen) for r in rows),
        seconds=time.perf_counter() - start,
    )
