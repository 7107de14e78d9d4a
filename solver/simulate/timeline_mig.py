"""The timeline replay on the MIG variant: every GPU an H100-80GB with dynamic MIG.

As in :mod:`gpupolicy.solver.simulate.mig`: a share asks for the smallest profile whose compute covers it,
a whole-GPU pod takes empty GPUs. A pod's MIG instance is created where the strategy places it (one of
its profile's placements whose memory slots are free, at most 7 compute slices per GPU) and destroyed
when the pod leaves (:func:`gpupolicy.solver.simulate.mig.remove`), so the slots are free for the next
instance. ``used`` is compute slices in use; the fragmentation is the free slices that the profile mix
of the whole workload can no longer use (``mig._frag_table`` with fixed weights).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import numpy.typing as npt

from gpupolicy.solver.simulate.mig import (
    WHOLE,
    Choice,
    Learned,
    MigCluster,
    _frag_table,
    apply,
    choose,
    h100_profiles,
    profile_of,
    remove,
)
from gpupolicy.solver.simulate.mig_batch import MigBatchConfig, solve_window
from gpupolicy.solver.simulate.timeline import Engine, TimelineResult, Workload
from gpupolicy.solver.simulate.trace import Nodes

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
BOOL = npt.NDArray[np.bool_]
CPU_ONLY = -2
MIG_STRATEGIES = ("first-fit", "online", "batch")


class MigBackend:
    def __init__(self, nodes: Nodes, work: Workload, strategy: str, seed: int) -> None:
        if strategy not in MIG_STRATEGIES:
            raise ValueError(f"the MIG variant has no strategy {strategy!r}")
        self.name, self.nodes, self.work = strategy, nodes, work
        self.prof = h100_profiles()
        self.cl = MigCluster(nodes, self.prof)
        self.arr = work.pods
        self.qs = np.array(
            [profile_of(int(m), int(g), self.prof) for m, g in zip(self.arr.milli, self.arr.num_gpu, strict=True)],
            dtype=np.int64,
        )
        self.rank = np.argsort(np.random.default_rng(seed + 7919).permutation(nodes.count)).astype(np.int64)
        self.learned = Learned(self.prof)
        self.observed: set[int] = set()
        self.decided: dict[int, Choice | None] = {}
        self.capacity = float(self.cl.total_slices)
        self.n_nodes = nodes.count
        mix: Counter[int] = Counter(int(q) for q in self.qs if q != CPU_ONLY)
        weights = np.array([mix[k] for k in range(len(self.prof.compute))] + [mix[WHOLE]], dtype=np.float64)
        self.table = _frag_table(self.prof, weights / max(weights.sum(), 1.0))

    def plan(self, pods: list[int]) -> None:
        if self.name != "batch":
            return
        for i in pods:
            self._observe(i)
        cfg = MigBatchConfig()
        self.decided = {}
        for k in range(0, len(pods), cfg.window):
            chunk = pods[k : k + cfg.window]
            qs = [int(self.qs[i]) for i in chunk]
            self.decided.update(solve_window(self.cl, self.arr, chunk[0], qs, self.rank, self.learned, cfg, chunk))

    def _observe(self, i: int) -> None:
        if i not in self.observed:
            self.observed.add(i)
            self.learned.observe(self.arr, i, int(self.qs[i]))

    def decide(self, i: int) -> Choice | None:
        if self.name == "batch":
            return self.decided.pop(i, None)
        if self.name == "online":
            self._observe(i)
        return choose(self.cl, self.arr, i, int(self.qs[i]), self.name, self.rank, self.learned)

    def apply(self, i: int, decision: Choice) -> int:
        apply(self.cl, self.arr, i, int(self.qs[i]), decision)
        return decision.node

    def release(self, i: int, decision: Choice) -> int:
        remove(self.cl, self.arr, i, int(self.qs[i]), decision)
        return decision.node

    def fits_on(self, cand: I64, node: int) -> BOOL:
        """Which pods of ``cand`` have room on ``node`` now (CPU, memory, and a free placement of their
        profile or enough empty GPUs)."""
        cl, arr = self.cl, self.arr
        ok = (arr.cpu[cand] <= cl.cpu[node]) & (arr.mem[cand] <= cl.mem[node])
        qs = self.qs[cand]
        room = np.zeros(len(cand), dtype=np.bool_)
        room[qs == CPU_ONLY] = True
        if self.nodes.gpus[node] > 0:
            valid = cl.valid[node]
            empty = int(((cl.mask[node] == 0) & (cl.used[node] == 0) & valid).sum())
            whole = qs == WHOLE
            room[whole] = arr.num_gpu[cand][whole] <= empty
            for q in np.unique(qs[qs >= 0]):
                pm = np.array(self.prof.masks[q], dtype=np.int64)
                free = ((cl.mask[node][:, None] & pm[None, :]) == 0).any(axis=1)
                fit = free & (cl.used[node] + self.prof.compute[q] <= self.prof.slices) & valid
                room[qs == q] = bool(fit.any())
        return np.asarray(ok & room, dtype=np.bool_)

    def used(self) -> float:
        return float(self.cl.slices_in_use())

    def frag(self, rows: I64) -> F64:
        cl = self.cl
        lost = self.table[cl.mask[rows], np.minimum(cl.used[rows], self.prof.slices)]
        return np.asarray(np.where(cl.valid[rows], lost, 0.0).sum(axis=1), dtype=np.float64)

    def check(self) -> None:
        cl = self.cl
        cl.check()
        assert (cl.cpu <= self.nodes.cpu).all() and (cl.mem <= self.nodes.mem).all(), "cpu/memory freed twice"
        v = cl.valid
        assert ((cl.mask[v] == 0) == (cl.used[v] == 0)).all(), "MIG slots and slices disagree"


def replay_timeline_mig(nodes: Nodes, work: Workload, strategy: str, seed: int, check: bool = False) -> TimelineResult:
    """Replay ``work`` on the MIG variant of ``nodes`` with ``strategy`` (first-fit, online, batch)."""
    return Engine(work, MigBackend(nodes, work, strategy, seed), check).run(seed)
