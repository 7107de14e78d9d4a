"""Placement strategies of the replay: the published baselines and a registry.

Each strategy places one pod at a time (``place`` returns a :class:`Placement` or ``None``).
The baselines follow the simulator's score plugins (integer scores, random choice among the
best-scored nodes like kube-scheduler's ``selectHost``):

- ``random``: a uniformly random feasible node, a random GPU that fits.
- ``first-fit``: the Kubernetes allocator order: first feasible node, first devices that fit.
- ``best-fit``: least CPU and GPU left after placement,
  ``100 x (1 - 0.5 (cpu_left-cpu)/128 cores - 0.5 (gpu_left-gpu)/8 GPUs)``, min-max normalised.
- ``gpu-packing``: prefer shared GPUs, then partly used nodes, then free nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gpupolicy.solver.simulate.candidates import best_fit_gpu, default_gpus
from gpupolicy.solver.simulate.cluster import Cluster, Placement
from gpupolicy.solver.simulate.protocol import PodTypes
from gpupolicy.solver.simulate.trace import MILLI, Pods

I64 = npt.NDArray[np.int64]
MAX_SPEC_CPU = 128_000
MAX_SPEC_GPU = 8_000


@dataclass
class Context:
    """What a strategy may know before the replay: the cluster, the trace, a random stream."""

    cluster: Cluster
    pods: Pods
    rng: np.random.Generator
    typical: PodTypes  # the protocol's typical pods of the original trace (FGD uses them)
    rank: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # node order for ties
    extra: dict[str, float] = field(default_factory=dict)


class Strategy(Protocol):
    name: str

    def reset(self, ctx: Context) -> None: ...

    def place(self, i: int) -> Placement | None: ...

    def commit(self, i: int, placement: Placement) -> None: ...

    def release(self, i: int, placement: Placement) -> None: ...

    def plan(self, pods: list[int]) -> None: ...


TIE_MODE = {"mode": "order"}


def pick_max(scores: npt.NDArray[np.float64] | I64, rng: np.random.Generator, rank: I64 | None = None) -> int:
    """Index of a maximal score; ties go to the lowest ``rank`` (or at random without one)."""
    best = np.flatnonzero(scores == scores.max())
    if len(best) == 1:
        return int(best[0])
    if rank is not None and TIE_MODE["mode"] == "order":
        return int(best[np.argmin(rank[best])])
    return int(rng.choice(best))


class _Base:
    name = "base"

    def reset(self, ctx: Context) -> None:
        self.ctx = ctx

    def commit(self, i: int, placement: Placement) -> None:
        """Called after the replay applied ``placement`` for pod ``i``."""

    def release(self, i: int, placement: Placement) -> None:
        """Called after the timeline replay removed pod ``i`` (it departed); strategies without
        state about what is placed where have nothing to do."""

    def plan(self, pods: list[int]) -> None:
        """Called by the timeline replay before it tries ``pods`` in this order, with nothing changing
        in between but their own placements (``batch`` solves them jointly); a no-op by default."""

    @property
    def cluster(self) -> Cluster:
        return self.ctx.cluster

    @property
    def pods(self) -> Pods:
        return self.ctx.pods


class RandomFit(_Base):
    name = "random"

    def place(self, i: int) -> Placement | None:
        nodes = np.flatnonzero(self.cluster.feasible(self.pods, i))
        if len(nodes) == 0:
            return None
        node = int(self.ctx.rng.choice(nodes))
        num, milli = int(self.pods.num_gpu[i]), int(self.pods.milli[i])
        if num == 1 and milli < MILLI:
            fit = np.flatnonzero(self.cluster.gpu_free[node] >= milli)
            return Placement(node, (int(self.ctx.rng.choice(fit)),))
        return Placement(node, default_gpus(self.cluster, self.pods, i, node))


class FirstFit(_Base):
    name = "first-fit"

    def place(self, i: int) -> Placement | None:
        nodes = np.flatnonzero(self.cluster.feasible(self.pods, i))
        if len(nodes) == 0:
            return None
        node = int(nodes[0])
        num, milli = int(self.pods.num_gpu[i]), int(self.pods.milli[i])
        if num == 1 and milli < MILLI:
            return Placement(node, (int(np.flatnonzero(self.cluster.gpu_free[node] >= milli)[0]),))
        return Placement(node, default_gpus(self.cluster, self.pods, i, node))


class BestFit(_Base):
    name = "best-fit"

    def place(self, i: int) -> Placement | None:
        c = self.cluster
        nodes = np.flatnonzero(c.feasible(self.pods, i))
        if len(nodes) == 0:
            return None
        cpu_term = (c.cpu_free[nodes] - self.pods.cpu[i]) / MAX_SPEC_CPU * 0.5
        gpu_left = c.gpu_free[nodes].sum(axis=1) - self.pods.gpu_request[i]
        raw = np.trunc((1.0 - (cpu_term + gpu_left / MAX_SPEC_GPU * 0.5)) * 100).astype(np.int64)
        lo, hi = int(raw.min()), int(raw.max())
        score = np.zeros_like(raw) if hi == lo else (raw - lo) * 100 // (hi - lo)
        node = int(nodes[pick_max(score, self.ctx.rng, self.ctx.rank[nodes])])
        return Placement(node, default_gpus(c, self.pods, i, node))


def packing_scores(free: I64, gpus: I64, milli: int, num: int) -> I64:
    """The simulator's GpuPacking score of each node row (higher = more packed)."""
    full = (free == MILLI).sum(axis=1)
    order = np.argsort(free, axis=1, kind="stable")
    ranked = np.take_along_axis(free, order, axis=1)
    fit = ranked >= milli
    use = fit & (np.cumsum(fit, axis=1) <= num)
    fresh = (use & (ranked == MILLI)).sum(axis=1)
    ratio = np.where(use, ranked * 100 // MILLI, 0).sum(axis=1)
    shared = np.maximum(100 - ratio // 10, 100 // 2)
    partly = np.where(fresh > 0, np.maximum(100 // 2 - fresh, 100 // 3), shared)
    return np.asarray(np.where(full == gpus, np.maximum(100 // 3 - full, full), partly), dtype=np.int64)


class GpuPacking(_Base):
    name = "gpu-packing"

    def place(self, i: int) -> Placement | None:
        c = self.cluster
        nodes = np.flatnonzero(c.feasible(self.pods, i))
        if len(nodes) == 0:
            return None
        num, milli = int(self.pods.num_gpu[i]), int(self.pods.milli[i])
        if num == 0:
            score = np.zeros(len(nodes), dtype=np.int64)
        else:
            score = packing_scores(c.gpu_free[nodes], c.nodes.gpus[nodes], milli, num)
        node = int(nodes[pick_max(score, self.ctx.rng, self.ctx.rank[nodes])])
        if num == 1 and milli < MILLI:
            return Placement(node, (best_fit_gpu(c.gpu_free[node], milli),))
        return Placement(node, default_gpus(c, self.pods, i, node))
