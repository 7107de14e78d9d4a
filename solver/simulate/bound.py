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
  at most 1000 milli (all such multisets are enumerated); ``x[t, p]``: GPUs of node type t
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


PodClass = tuple[int, int, int, int, int]  # GPU count, per-GPU size, spec mask, CPU milli, memory MiB


def _classes(arrivals: Pods, forced: BOOL) -> dict[PodClass, list[int]]:
    """Each pod class -> [forced pods, other pods]."""
    out: dict[PodClass, list[int]] = {}
    for i in range(arrivals.count):
        num, milli = int(arrivals.num_gpu[i]), int(arrivals.milli[i])
        size = WHOLE if num and milli >= MILLI else (milli if num else 0)
        key = (num, size, int(arrivals.spec_mask[i]), int(arrivals.cpu[i]), int(arrivals.mem[i]))
        out.setdefault(key, [0, 0])[0 if forced[i] else 1] += 1
    return out


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


def arrived_before(arrivals: Pods, capacity_milli: int, pct: float) -> BOOL:
    """The leading arrivals whose GPU request, summed, stays within ``pct`` % of capacity."""
    cum = np.cumsum(arrivals.gpu_request)
    return np.asarray(cum <= pct / 100.0 * capacity_milli, dtype=np.bool_)


def ceiling(nodes: Nodes, arrivals: Pods, forced: BOOL) -> Ceiling:
    """The LP bound for schedules that place every arrival where ``forced`` is true (and any others)."""
    from ortools.linear_solver import pywraplp

    start = time.perf_counter()
    classes = _classes(arrivals, forced)
    types = _node_types(nodes)
    solver = pywraplp.Solver.CreateSolver("GLOP")
    inf = solver.infinity()
    objective = solver.Objective()
    served: dict[PodClass, list[object]] = {c: [] for c in classes}
    pattern_cache: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    columns = 0
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
        sizes = tuple(sorted({c[1] for c in here if c[0] and c[1] < WHOLE}))
        pats = pattern_cache.setdefault(sizes, patterns(list(sizes)))
        columns += len(pats)
        used = [solver.NumVar(0, inf, "") for _ in pats]
        whole = solver.NumVar(0, inf, "")
        room = solver.Constraint(0, count * t[1])
        room.SetCoefficient(whole, 1)
        objective.SetCoefficient(whole, WHOLE)
        for k, p in enumerate(pats):
            room.SetCoefficient(used[k], 1)
            objective.SetCoefficient(used[k], sum(p))
        for size in [*sizes, WHOLE]:
            link = solver.Constraint(0, 0)  # slots of this size on these GPUs == the requests served there
            for c, var in y.items():
                if c[0] and c[1] == size:
                    link.SetCoefficient(var, -c[0])
            if size == WHOLE:
                link.SetCoefficient(whole, 1)
            else:
                for k, p in enumerate(pats):
                    if size in p:
                        link.SetCoefficient(used[k], p.count(size))
    for c, vars_ in served.items():
        lo, extra = classes[c]
        row = solver.Constraint(lo, lo + extra)
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
        patterns=columns,
        seconds=time.perf_counter() - start,
    )
