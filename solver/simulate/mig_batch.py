"""``batch`` for the MIG variant: windows of arrivals placed jointly with CP-SAT.

The offline reference of :mod:`gpupolicy.solver.simulate.batch`, with MIG geometry. Each window of
``window`` arrivals is first run through ``online`` on a copy of the cluster (the solver's
hint, and the answer when no solution is found in time). Every pod may then go to the node
``online`` picked or to a shared pool: the first ``pool`` nodes in node order that still have
free compute slices. On those nodes the model offers each MIG pod every placement of its
profile that is free now, each whole-GPU pod the GPUs that are empty now, each CPU-only pod
the node itself. Per GPU at most one instance per memory slot and at most 7 compute slices;
per node CPU and memory. The objective is compute slices placed (+1 per pod, so CPU-only
pods count), then agreement with the online pass. A pod may be left out, so this is a
reference for how much a scheduler that sees the window could fit, not a scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ortools.sat.python import cp_model

from gpupolicy.solver.simulate.mig import WHOLE, Choice, Learned, MigCluster, apply, choose, node_ok, slices_of
from gpupolicy.solver.simulate.trace import Pods

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
CPU_ONLY = -2


@dataclass(frozen=True)
class MigBatchConfig:
    window: int = 32
    pool: int = 4  # nodes in node order with free slices, offered to every pod of the window
    seconds: float = 1.0
    workers: int = 1
    seed: int = 0


@dataclass
class _Vars:
    """The window's decision variables, keyed by pod."""

    mig: dict[int, list[tuple[Choice, cp_model.IntVar]]]  # MIG pods: one literal per (node, gpu, placement)
    node: dict[int, dict[int, cp_model.IntVar]]  # whole-GPU and CPU-only pods: one literal per node
    whole: dict[tuple[int, int], dict[int, cp_model.IntVar]]  # whole-GPU pods: (pod, node) -> GPU literals


def _online_pass(
    cl: MigCluster, arr: Pods, pods: list[int], qs: list[int], rank: I64, learned: Learned
) -> dict[int, Choice]:
    sim = cl.copy()
    hint: dict[int, Choice] = {}
    for i, q in zip(pods, qs, strict=True):
        choice = choose(sim, arr, i, q, "online", rank, learned)
        if choice is not None:
            apply(sim, arr, i, q, choice)
            hint[i] = choice
    return hint


def _pool(cl: MigCluster, rank: I64, size: int) -> list[int]:
    room = ((cl.used < cl.prof.slices) & cl.valid).any(axis=1)
    nodes = np.flatnonzero(room)
    return [int(n) for n in nodes[np.argsort(rank[nodes])][:size]]


def _variables(
    model: cp_model.CpModel, cl: MigCluster, arr: Pods, pods: list[int], qs: list[int], nodes: dict[int, list[int]]
) -> _Vars:
    v = _Vars({}, {}, {})
    empty = cl.empty()
    options: dict[int, npt.NDArray[np.bool_]] = {}  # per profile: the state is fixed during the window
    for i, q in zip(pods, qs, strict=True):
        fit = node_ok(cl, arr, i, q)
        cand = [n for n in nodes[i] if fit[n]]
        if q >= 0:
            if q not in options:
                options[q] = cl.options(q)
            opts = options[q]
            v.mig[i] = [
                (Choice(n, (int(g),), int(k)), model.new_bool_var(f"m_{i}_{n}_{g}_{k}"))
                for n in cand
                for g, k in np.argwhere(opts[n])
            ]
            continue
        v.node[i] = {}
        for n in cand:
            gpus = np.flatnonzero(empty[n]) if q == WHOLE else np.zeros(0, dtype=np.int64)
            if q == WHOLE and len(gpus) < arr.num_gpu[i]:
                continue
            x = model.new_bool_var(f"x_{i}_{n}")
            v.node[i][n] = x
            if q == WHOLE:
                v.whole[i, n] = {int(g): model.new_bool_var(f"w_{i}_{n}_{g}") for g in gpus}
                model.add(sum(v.whole[i, n].values()) == int(arr.num_gpu[i]) * x)
    return v


def _constraints(model: cp_model.CpModel, cl: MigCluster, arr: Pods, qs: dict[int, int], v: _Vars) -> None:
    prof = cl.prof
    slot_terms: dict[tuple[int, int, int], list[cp_model.IntVar]] = {}
    slice_terms: dict[tuple[int, int], list[tuple[int, cp_model.IntVar]]] = {}
    node_terms: dict[int, list[tuple[int, cp_model.IntVar]]] = {}
    for i, opts in v.mig.items():
        model.add_at_most_one(x for _, x in opts)
        for c, x in opts:
            (g,) = c.gpus
            mask = prof.masks[qs[i]][c.k]
            for s in range(prof.slots):
                if mask >> s & 1:
                    slot_terms.setdefault((c.node, g, s), []).append(x)
            slice_terms.setdefault((c.node, g), []).append((int(prof.compute[qs[i]]), x))
            node_terms.setdefault(c.node, []).append((i, x))
    for i, per_node in v.node.items():
        model.add_at_most_one(per_node.values())
        for n, x in per_node.items():
            node_terms.setdefault(n, []).append((i, x))
    for (_, n), gpus in v.whole.items():
        for g, w in gpus.items():
            for s in range(prof.slots):
                slot_terms.setdefault((n, g, s), []).append(w)
            slice_terms.setdefault((n, g), []).append((prof.slices, w))
    for terms in slot_terms.values():
        if len(terms) > 1:
            model.add_at_most_one(terms)
    for (n, g), weighted in slice_terms.items():
        model.add(sum(c * x for c, x in weighted) <= prof.slices - int(cl.used[n, g]))
    for n, members in node_terms.items():
        model.add(sum(int(arr.cpu[i]) * x for i, x in members) <= int(cl.cpu[n]))
        model.add(sum(int(arr.mem[i]) * x for i, x in members) <= int(cl.mem[n]))


def solve_window(
    cl: MigCluster,
    arr: Pods,
    first: int,
    qs: list[int],
    rank: I64,
    learned: Learned,
    config: MigBatchConfig,
    pods: list[int] | None = None,
) -> dict[int, Choice | None]:
    """Decisions for pods ``first .. first + len(qs) - 1`` (or ``pods``, in this order; profiles ``qs``) on
    the cluster as it is now."""
    pods = list(range(first, first + len(qs))) if pods is None else list(pods)
    hint = _online_pass(cl, arr, pods, qs, rank, learned)
    pool = _pool(cl, rank, config.pool)
    nodes = {i: list(dict.fromkeys([*pool, *([hint[i].node] if i in hint else [])])) for i in pods}
    model = cp_model.CpModel()
    v = _variables(model, cl, arr, pods, qs, nodes)
    by_pod = dict(zip(pods, qs, strict=True))
    _constraints(model, cl, arr, by_pod, v)
    scale = 2 * len(pods) + 2
    terms: list[cp_model.LinearExprT] = []
    for i, opts in v.mig.items():
        for c, x in opts:
            agree = hint.get(i) == c
            model.add_hint(x, agree)
            terms.append(((slices_of(cl.prof, by_pod[i], int(arr.num_gpu[i])) + 1) * scale + int(agree)) * x)
    for i, per_node in v.node.items():
        h = hint.get(i)
        for n, x in per_node.items():
            agree = h is not None and h.node == n
            model.add_hint(x, agree)
            terms.append(((slices_of(cl.prof, by_pod[i], int(arr.num_gpu[i])) + 1) * scale + int(agree)) * x)
            for g, w in v.whole.get((i, n), {}).items():
                model.add_hint(w, agree and h is not None and g in h.gpus)
    model.maximize(sum(terms))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = config.seconds
    solver.parameters.num_workers = config.workers
    solver.parameters.random_seed = config.seed
    status = solver.solve(model)
    out: dict[int, Choice | None] = dict.fromkeys(pods)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        out.update(hint)
        return out
    for i, opts in v.mig.items():
        out[i] = next((c for c, x in opts if solver.boolean_value(x)), None)
    for i, per_node in v.node.items():
        for n, x in per_node.items():
            if solver.boolean_value(x):
                gpus = tuple(g for g, w in v.whole.get((i, n), {}).items() if solver.boolean_value(w))
                out[i] = Choice(n, gpus)
    return out
