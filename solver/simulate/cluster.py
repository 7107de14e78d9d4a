"""The cluster as numpy arrays: per-node free CPU and memory, per-GPU free milli.

GPU columns beyond a node's GPU count hold 0 free milli, so they never fit a GPU request and
add nothing to idle sums. :meth:`Cluster.check` is the invariant checker the tests run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gpupolicy.solver.simulate.trace import MILLI, Nodes, Pods

I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Placement:
    node: int
    gpus: tuple[int, ...]  # device indexes on the node (empty for CPU-only pods)


@dataclass
class Cluster:
    nodes: Nodes
    cpu_free: I64 = field(init=False)
    mem_free: I64 = field(init=False)
    gpu_free: I64 = field(init=False)
    model_bits: I64 = field(init=False)
    used_milli: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        n, g = self.nodes.count, max(self.nodes.max_gpus, 1)
        self.cpu_free = self.nodes.cpu.copy()
        self.mem_free = self.nodes.mem.copy()
        cols = np.arange(g)[None, :]
        self.gpu_free = np.where(cols < self.nodes.gpus[:, None], MILLI, 0).astype(np.int64).reshape(n, g)
        self.model_bits = self.nodes.model_bits()

    @property
    def gpu_slots(self) -> BOOL:
        return np.arange(self.gpu_free.shape[1])[None, :] < self.nodes.gpus[:, None]

    def feasible(self, pods: Pods, i: int) -> BOOL:
        """Nodes that can host pod ``i`` right now."""
        ok = (self.cpu_free >= pods.cpu[i]) & (self.mem_free >= pods.mem[i])
        num = int(pods.num_gpu[i])
        if num == 0:
            return np.asarray(ok, dtype=np.bool_)
        ok &= (self.model_bits & pods.spec_mask[i]) != 0
        return np.asarray(ok & ((self.gpu_free >= pods.milli[i]).sum(axis=1) >= num), dtype=np.bool_)

    def fits(self, pods: Pods, i: int, p: Placement) -> bool:
        num, milli = int(pods.num_gpu[i]), int(pods.milli[i])
        n = p.node
        if self.cpu_free[n] < pods.cpu[i] or self.mem_free[n] < pods.mem[i] or len(set(p.gpus)) != num:
            return False
        if num and not (self.model_bits[n] & pods.spec_mask[i]):
            return False
        slots = self.gpu_slots[n]
        return all(0 <= g < len(slots) and slots[g] and self.gpu_free[n, g] >= milli for g in p.gpus)

    def place(self, pods: Pods, i: int, p: Placement) -> None:
        if not self.fits(pods, i, p):
            raise ValueError(f"placement {p} does not fit pod {pods.names[i]}")
        self.cpu_free[p.node] -= pods.cpu[i]
        self.mem_free[p.node] -= pods.mem[i]
        for g in p.gpus:
            self.gpu_free[p.node, g] -= pods.milli[i]
        self.used_milli += int(pods.milli[i]) * len(p.gpus)

    def remove(self, pods: Pods, i: int, p: Placement) -> None:
        """Undo :meth:`place` (used by look-ahead strategies that try placements)."""
        self.cpu_free[p.node] += pods.cpu[i]
        self.mem_free[p.node] += pods.mem[i]
        for g in p.gpus:
            self.gpu_free[p.node, g] += pods.milli[i]
        self.used_milli -= int(pods.milli[i]) * len(p.gpus)

    def check(self) -> None:
        """Raise AssertionError if any capacity is over-allocated or the books do not add up."""
        assert (self.cpu_free >= 0).all() and (self.cpu_free <= self.nodes.cpu).all(), "cpu over-allocated"
        assert (self.mem_free >= 0).all() and (self.mem_free <= self.nodes.mem).all(), "memory over-allocated"
        slots = self.gpu_slots
        assert ((self.gpu_free >= 0) & (self.gpu_free <= MILLI)).all(), "gpu milli out of range"
        assert (self.gpu_free[~slots] == 0).all(), "padding GPU columns used"
        assert int((MILLI - self.gpu_free)[slots].sum()) == self.used_milli, "used GPU milli does not add up"

    def idle_milli(self) -> int:
        return self.nodes.total_gpu_milli - self.used_milli
