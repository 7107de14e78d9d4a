"""Where a pod could go: feasible nodes and, inside them, the GPUs each choice would use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gpupolicy.solver.simulate.cluster import Cluster, Placement
from gpupolicy.solver.simulate.trace import MILLI, Pods

I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Candidates:
    """One row per distinct choice: its node, the GPU mask it uses and the state after it."""

    node: I64  # [M], ascending
    use: BOOL  # [M, G] GPUs the choice takes
    cpu_after: I64  # [M]
    free_after: I64  # [M, G]

    @property
    def count(self) -> int:
        return len(self.node)

    def placement(self, k: int) -> Placement:
        return Placement(int(self.node[k]), tuple(int(g) for g in np.flatnonzero(self.use[k])))


def first_free(free: I64, num: int) -> BOOL:
    """The first ``num`` fully free GPUs of each row (the exclusive-GPU rule of the allocator)."""
    full = free == MILLI
    return np.asarray(full & (np.cumsum(full, axis=1) <= num), dtype=np.bool_)


def distinct_fitting(free: I64, milli: int) -> BOOL:
    """GPUs that fit ``milli``, keeping only the first GPU of each distinct free value per row."""
    g = free.shape[1]
    fit = free >= milli
    same = free[:, :, None] == free[:, None, :]
    earlier = np.tril(np.ones((g, g), dtype=bool), k=-1)[None, :, :]
    dup = (same & earlier & fit[:, None, :]).any(axis=2)
    return np.asarray(fit & ~dup, dtype=np.bool_)


def enumerate_choices(cluster: Cluster, pods: Pods, i: int, feasible: BOOL | None = None) -> Candidates:
    """All distinct placements of pod ``i``: one per node, or one per distinct GPU for shares."""
    feas = cluster.feasible(pods, i) if feasible is None else feasible
    nodes = np.flatnonzero(feas)
    free = cluster.gpu_free[nodes]
    cpu = cluster.cpu_free[nodes] - pods.cpu[i]
    num, milli = int(pods.num_gpu[i]), int(pods.milli[i])
    if num == 0:
        use = np.zeros_like(free, dtype=bool)
        return Candidates(nodes, use, cpu, free)
    if num == 1 and milli < MILLI:
        pick = distinct_fitting(free, milli)
        row, col = np.nonzero(pick)
        use = np.zeros((len(row), free.shape[1]), dtype=bool)
        use[np.arange(len(row)), col] = True
        after = free[row].copy()
        after[np.arange(len(row)), col] -= milli
        return Candidates(nodes[row], use, cpu[row], after)
    use = first_free(free, num)
    return Candidates(nodes, use, cpu, np.where(use, free - milli, free))


def best_fit_gpu(free_row: I64, milli: int) -> int:
    """The GPU with the least free milli that still fits (first index among ties)."""
    fit = np.flatnonzero(free_row >= milli)
    return int(fit[np.argmin(free_row[fit])])


def default_gpus(cluster: Cluster, pods: Pods, i: int, node: int) -> tuple[int, ...]:
    """GPU choice of the reference allocator: best-fit GPU for shares, first free GPUs otherwise."""
    num, milli = int(pods.num_gpu[i]), int(pods.milli[i])
    if num == 0:
        return ()
    free = cluster.gpu_free[node]
    if num == 1 and milli < MILLI:
        return (best_fit_gpu(free, milli),)
    return tuple(int(g) for g in np.flatnonzero(first_free(free[None, :], num)[0]))
