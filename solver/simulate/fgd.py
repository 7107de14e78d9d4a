"""FGD (Weng et al., ATC'23): place each pod where the cluster's fragmentation grows least.

Implemented from the paper's definition and the simulator's facts: the node score is
``int(100 x sigmoid((frag_before - frag_after) / 1000))``; a shared pod tries every GPU that
fits and keeps the first GPU with the best score; whole-GPU pods take the first free GPUs;
ties between nodes are broken at random (kube-scheduler's ``selectHost``). The typical pods
are the protocol's (from the original trace).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gpupolicy.solver.simulate import frag
from gpupolicy.solver.simulate.candidates import Candidates, enumerate_choices
from gpupolicy.solver.simulate.cluster import Placement
from gpupolicy.solver.simulate.protocol import PodTypes
from gpupolicy.solver.simulate.strategies import Context, _Base, pick_max

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def first_best_per_node(node: I64, score: F64 | I64, n_nodes: int) -> I64:
    """Rows holding each node's best score (the first such row of each node)."""
    best = np.full(n_nodes, -np.inf)
    np.maximum.at(best, node, score)
    rows = np.flatnonzero(score == best[node])
    _, first = np.unique(node[rows], return_index=True)
    return rows[first]


class FragAware(_Base):
    """Shared machinery: a per-node fragmentation cache for a set of typical types."""

    types: PodTypes

    def _measure(self, cpu: I64, mem: I64, bits: I64, free: I64) -> F64:
        """Fragmentation of each node state (FGD's; memory is there for measures that use it)."""
        return frag.fgd(cpu, bits, free, self.types)

    def set_types(self, types: PodTypes) -> None:
        self.types = types
        c = self.cluster
        self.frag_now = self._measure(c.cpu_free, c.mem_free, c.model_bits, c.gpu_free)

    def frag_delta(self, cand: Candidates) -> F64:
        c = self.cluster
        mem_after = c.mem_free[cand.node] - self._pending_mem
        after = self._measure(cand.cpu_after, mem_after, c.model_bits[cand.node], cand.free_after)
        return np.asarray(self.frag_now[cand.node] - after, dtype=np.float64)

    _pending_mem: int = 0

    def release(self, i: int, placement: Placement) -> None:
        self.commit(-1, Placement(placement.node, ()))  # refreshes the node's fragmentation cache

    def commit(self, i: int, placement: Placement) -> None:
        c, n = self.cluster, placement.node
        sl = slice(n, n + 1)
        self.frag_now[n] = self._measure(c.cpu_free[sl], c.mem_free[sl], c.model_bits[sl], c.gpu_free[sl])[0]


class Fgd(FragAware):
    name = "fgd"

    def reset(self, ctx: Context) -> None:
        super().reset(ctx)
        self.set_types(ctx.typical)

    def place(self, i: int) -> Placement | None:
        self._pending_mem = int(self.pods.mem[i])
        cand = enumerate_choices(self.cluster, self.pods, i)
        if cand.count == 0:
            return None
        delta = self.frag_delta(cand)
        score = np.trunc(100.0 / (1.0 + np.exp(-delta / 1000.0))).astype(np.int64)
        rows = first_best_per_node(cand.node, score, self.cluster.nodes.count)
        return cand.placement(int(rows[pick_max(score[rows], self.ctx.rng, self.ctx.rank[cand.node[rows]])]))
