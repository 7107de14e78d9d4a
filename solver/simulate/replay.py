"""Replay one arrival sequence with one strategy and measure it the way the FGD paper did.

Each pod is tried once, in order; it never leaves and a failure is final. After every
attempt the replay records the GPU milli that has *arrived* (failed pods included) and the
GPU milli in use. The curve maps arrived demand, rounded to a whole percent of the cluster's
GPU capacity, to the mean allocation over the events in that bucket (an empty bucket takes
the events of its neighbours), as the published analysis scripts do.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gpupolicy.solver.simulate import frag
from gpupolicy.solver.simulate.cluster import Cluster
from gpupolicy.solver.simulate.protocol import PodTypes, arrival_order, type_counts, typical_types
from gpupolicy.solver.simulate.strategies import Context, Strategy
from gpupolicy.solver.simulate.trace import Nodes, Pods

F64 = npt.NDArray[np.float64]
BUCKETS = 131


@dataclass
class SeedResult:
    strategy: str
    seed: int
    pods: int
    curve: F64  # allocation % per arrived-% bucket 0..130
    frag: F64  # FGD fragmentation, % of GPU capacity, per bucket
    frag_ratio: F64  # FGD fragmentation / idle GPU milli, %, per bucket
    stranded: F64  # our measure, % of GPU capacity, per bucket
    failed: dict[str, int]
    seconds: float
    decision_ms: F64 = field(repr=False)
    final_allocation: float = 0.0
    first_gpu_failure: int = -1  # arrival index of the first GPU pod that failed (-1: none failed)
    first_gpu_failure_pct: float = float("nan")  # GPU request arrived before it, % of capacity
    ceiling: float = float("nan")  # gpupolicy.solver.simulate.bound: see Replay.run
    ceiling_exact: bool = True  # False: the bound's column generation stopped early (a looser bound)
    placed: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=np.bool_), repr=False)

    @property
    def at_130(self) -> float:
        return float(self.curve[130])


def bucket_means(arrived_pct: F64, values: F64) -> F64:
    """Mean of ``values`` per rounded arrived percent 0..130 (neighbours fill empty buckets)."""
    key = np.round(arrived_pct).astype(np.int64)
    inside = (key >= 0) & (key < BUCKETS)
    k, v = key[inside], values[inside]
    sums = np.bincount(k, weights=v, minlength=BUCKETS)[:BUCKETS]
    counts = np.bincount(k, minlength=BUCKETS)[:BUCKETS].astype(np.float64)
    out = np.full(BUCKETS, np.nan)
    for b in range(BUCKETS):
        lo, hi = max(b - 1, 0), min(b + 1, BUCKETS - 1)
        if counts[b]:
            out[b] = sums[b] / counts[b]
        elif counts[lo : hi + 1].sum():
            out[b] = sums[lo : hi + 1].sum() / counts[lo : hi + 1].sum()
    return out


@dataclass
class Replay:
    """The inputs shared by every seed of one (cluster, trace)."""

    nodes: Nodes
    pods: Pods
    target: float = 1.3
    typical: PodTypes = field(init=False)
    all_types: PodTypes = field(init=False)

    def __post_init__(self) -> None:
        counts = type_counts(self.pods)
        self.typical = typical_types(counts, 0.95)
        self.all_types = typical_types(counts, 1.0)

    def run(
        self,
        strategy: Strategy,
        seed: int,
        check: bool = False,
        progress: object = None,
        ceiling: float | None = None,
    ) -> SeedResult:
        """Replay one seed; with ``ceiling`` (an arrived %), also bound what any schedule could reach
        that places every pod this one placed among the arrivals before that point."""
        order = arrival_order(self.pods, self.nodes.total_gpu_milli, seed, self.target)
        arrivals = self.pods.take(order)
        cluster = Cluster(self.nodes)
        rng = np.random.default_rng(seed + 7919)
        rank = np.argsort(rng.permutation(self.nodes.count)).astype(np.int64)
        ctx = Context(cluster, arrivals, rng, self.typical, rank)
        strategy.reset(ctx)
        result = self._loop(strategy, cluster, arrivals, seed, check, progress)
        if ceiling is not None:
            from gpupolicy.solver.simulate.bound import arrived_before
            from gpupolicy.solver.simulate.bound import ceiling as bound

            forced = result.placed & arrived_before(arrivals, self.nodes.total_gpu_milli, ceiling)
            found = bound(self.nodes, arrivals, forced)
            result.ceiling, result.ceiling_exact = found.allocation, found.exact
        return result

    def _loop(
        self, strategy: Strategy, cluster: Cluster, arrivals: Pods, seed: int, check: bool, progress: object
    ) -> SeedResult:
        n = arrivals.count
        cap = float(self.nodes.total_gpu_milli)
        bits = cluster.model_bits
        node_frag = frag.fgd(cluster.cpu_free, bits, cluster.gpu_free, self.typical)
        node_str = frag.stranded(cluster.cpu_free, bits, cluster.gpu_free, self.all_types)
        arrived = np.zeros(n)
        used, fr, st = np.zeros(n), np.zeros(n), np.zeros(n)
        idle = np.zeros(n)
        decision = np.zeros(n)
        placed = np.zeros(n, dtype=np.bool_)
        failed: Counter[str] = Counter()
        kinds = arrivals.kind()
        total_arrived = 0
        start = time.perf_counter()
        for i in range(n):
            total_arrived += int(arrivals.gpu_request[i])
            t0 = time.perf_counter()
            placement = strategy.place(i)
            decision[i] = time.perf_counter() - t0
            if placement is None:
                failed[str(kinds[i])] += 1
            else:
                placed[i] = True
                cluster.place(arrivals, i, placement)
                strategy.commit(i, placement)
                m = placement.node
                sl = slice(m, m + 1)
                node_frag[m] = frag.fgd(cluster.cpu_free[sl], bits[sl], cluster.gpu_free[sl], self.typical)[0]
                node_str[m] = frag.stranded(cluster.cpu_free[sl], bits[sl], cluster.gpu_free[sl], self.all_types)[0]
            if check:
                cluster.check()
            arrived[i], used[i] = total_arrived, cluster.used_milli
            fr[i], st[i], idle[i] = node_frag.sum(), node_str.sum(), cap - cluster.used_milli
            if progress is not None and callable(progress):
                progress(i + 1, n)
        seconds = time.perf_counter() - start
        pct = arrived / cap * 100
        ratio = np.where(idle > 0, fr / np.maximum(idle, 1) * 100, 0.0)
        gpu_failed = np.flatnonzero(~placed & (arrivals.num_gpu > 0))
        first_fail = int(gpu_failed[0]) if len(gpu_failed) else -1
        return SeedResult(
            strategy=strategy.name,
            seed=seed,
            pods=n,
            curve=bucket_means(pct, np.round(used / cap * 100, 2)),
            frag=bucket_means(pct, fr / cap * 100),
            frag_ratio=bucket_means(pct, ratio),
            stranded=bucket_means(pct, st / cap * 100),
            failed=dict(sorted(failed.items())),
            seconds=seconds,
            decision_ms=decision * 1000,
            final_allocation=float(used[-1] / cap * 100) if n else 0.0,
            first_gpu_failure=first_fail,
            first_gpu_failure_pct=float(pct[first_fail] - arrivals.gpu_request[first_fail] / cap * 100)
            if first_fail >= 0
            else float("nan"),
            placed=placed,
        )
