"""``batch``: an offline reference that places windows of arrivals jointly with CP-SAT.

Arrivals are taken ``window`` at a time. For each pod the model offers its ``candidates``
best nodes (ranked by the ``online`` scoring at the start of the window); CP-SAT then decides
which pods to place, where, and on which GPUs, maximising the GPU milli placed (a pod may be
left out: this is a reference for how much a clairvoyant scheduler could fit, not a
scheduler). Within a window every pod's decision is known only after the
solve; the replay records the window's pods when the solve is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from ortools.sat.python import cp_model

from gpupolicy.solver.simulate.candidates import enumerate_choices
from gpupolicy.solver.simulate.cluster import Placement
from gpupolicy.solver.simulate.online import Online, OnlineConfig
from gpupolicy.solver.simulate.strategies import Context
from gpupolicy.solver.simulate.trace import MILLI

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class BatchConfig:
    window: int = 64
    candidates: int = 4  # per pod: its best nodes by the online score, plus the shared pool
    pool: int = 16  # at most this many pool nodes per pod
    seconds: float = 2.0
    workers: int = 2
    seed: int = 0


@dataclass
class _Window:
    pods: list[int]
    nodes: dict[int, list[int]] = field(default_factory=dict)  # pod -> candidate nodes


class Batch(Online):
    name = "batch"

    def __init__(self, config: BatchConfig | None = None) -> None:
        super().__init__(OnlineConfig())
        self.batch = config or BatchConfig()

    def reset(self, ctx: Context) -> None:
        super().reset(ctx)
        self.decided: dict[int, Placement | None] = {}
        self.solve_seconds = 0.0

    def place(self, i: int) -> Placement | None:
        if i not in self.decided:
            self._solve_window(i)
        return self.decided.pop(i)

    def plan(self, pods: list[int]) -> None:
        """The timeline replay's round: solve ``pods`` (in windows, in this order) on the cluster as it is."""
        self.decided.clear()
        for k in range(0, len(pods), self.batch.window):
            self._solve_pods(pods[k : k + self.batch.window])

    def _pool(self, pods: list[int]) -> I64:
        """Nodes in node order, not yet full, holding about twice the window's GPU demand."""
        c = self.cluster
        demand = 2 * int(self.pods.gpu_request[pods].sum()) + 8 * MILLI
        order = np.argsort(self.rank)
        idle = c.gpu_free.sum(axis=1)[order]
        open_ = order[(idle > 0) | (c.nodes.gpus[order] == 0)]
        cum = np.cumsum(c.gpu_free.sum(axis=1)[open_])
        return np.asarray(open_[: int(np.searchsorted(cum, demand)) + 1], dtype=np.int64)

    def _candidates(self, i: int, pool: I64) -> list[int]:
        cand = enumerate_choices(self.cluster, self.pods, i)
        if cand.count == 0:
            return []
        feasible = np.zeros(self.cluster.nodes.count, dtype=bool)
        feasible[cand.node] = True
        shared = [int(n) for n in pool if feasible[n]][: self.batch.pool]
        delta = np.floor(self.frag_delta(cand))
        order = np.lexsort((self.rank[cand.node], -delta))
        nodes: list[int] = list(shared)
        best = 0
        for k in order:
            n = int(cand.node[k])
            if n not in nodes:
                nodes.append(n)
                best += 1
            if best >= self.batch.candidates:
                break
        return nodes

    def _online_pass(self, pods: list[int]) -> dict[int, Placement]:
        """What ``online`` would do with the window, pod by pod; the state is restored after."""
        tried: dict[int, Placement] = {}
        contents = dict(self.contents)
        for i in pods:
            p = Online.place(self, i)
            if p is not None:
                self.cluster.place(self.pods, i, p)
                self.commit(i, p)
                tried[i] = p
        for i in reversed(list(tried)):
            self.cluster.remove(self.pods, i, tried[i])
        for n in {p.node for p in tried.values()}:
            self.commit(-1, Placement(n, ()))  # refreshes the node's fragmentation cache
        self.contents = contents
        return tried

    def _solve_window(self, first: int) -> None:
        last = min(first + self.batch.window, self.pods.count)
        self._solve_pods(list(range(first, last)))

    def _solve_pods(self, pods: list[int]) -> None:
        win = _Window(list(pods))
        online = self._online_pass(win.pods)
        pool = self._pool(win.pods)
        for i in win.pods:
            win.nodes[i] = self._candidates(i, pool)
        for i, p in online.items():
            if p.node not in win.nodes[i]:
                win.nodes[i].append(p.node)
        self.decided.update(_solve(self, win, online))


def _solve(strategy: Batch, win: _Window, greedy: dict[int, Placement]) -> dict[int, Placement | None]:
    c, pods = strategy.cluster, strategy.pods
    model = cp_model.CpModel()
    place: dict[tuple[int, int], cp_model.IntVar] = {}
    gpu: dict[tuple[int, int], dict[int, cp_model.IntVar]] = {}
    on_gpu: dict[tuple[int, int], list[tuple[int, cp_model.IntVar]]] = {}
    by_node: dict[int, list[int]] = {}
    for i in win.pods:
        for n in win.nodes[i]:
            x = model.new_bool_var(f"x_{i}_{n}")
            place[i, n] = x
            by_node.setdefault(n, []).append(i)
            if pods.num_gpu[i] == 0:
                continue
            fits = np.flatnonzero(c.gpu_free[n] >= pods.milli[i])
            gpu[i, n] = {int(g): model.new_bool_var(f"g_{i}_{n}_{g}") for g in fits}
            for g, v in gpu[i, n].items():
                on_gpu.setdefault((n, g), []).append((i, v))
            model.add(sum(gpu[i, n].values()) == int(pods.num_gpu[i]) * x)
        model.add_at_most_one(place[i, n] for n in win.nodes[i])
    for n, members in by_node.items():
        model.add(sum(int(pods.cpu[i]) * place[i, n] for i in members) <= int(c.cpu_free[n]))
        model.add(sum(int(pods.mem[i]) * place[i, n] for i in members) <= int(c.mem_free[n]))
    for (n, g), terms in on_gpu.items():
        model.add(sum(int(pods.milli[i]) * v for i, v in terms) <= int(c.gpu_free[n, g]))
    for (i, n), x in place.items():
        hint = greedy.get(i)
        model.add_hint(x, hint is not None and hint.node == n)
        for g, v in gpu.get((i, n), {}).items():
            model.add_hint(v, hint is not None and hint.node == n and g in hint.gpus)
    # Primary: GPU milli placed (+1 per pod so CPU-only pods count); secondary: agree with
    # the online pass, so the window only departs from it where that places more.
    scale = 2 * len(win.pods) + 2
    agree = {(i, p.node) for i, p in greedy.items()}
    model.maximize(
        sum(((int(pods.gpu_request[i]) + 1) * scale + (1 if (i, n) in agree else 0)) * x for (i, n), x in place.items())
    )
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = strategy.batch.seconds
    solver.parameters.num_workers = strategy.batch.workers
    solver.parameters.random_seed = strategy.batch.seed
    solver.parameters.symmetry_level = 0
    solver.parameters.max_presolve_iterations = 1
    status = solver.solve(model)
    strategy.solve_seconds += solver.wall_time
    out: dict[int, Placement | None] = dict.fromkeys(win.pods)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        out.update(greedy)  # no solution in time: keep the online pass
        return out
    for (i, n), x in place.items():
        if solver.boolean_value(x):
            chosen = gpu.get((i, n), {})
            out[i] = Placement(n, tuple(g for g, v in chosen.items() if solver.boolean_value(v)))
    return out
