"""``online``: our one-pod-at-a-time strategy.

What it keeps from FGD, because measurements showed it matters (see
``benchmarks/results/simulate.md``): the fragmentation gradient as the first criterion, the
saturating integer score ``int(100 sigmoid(delta/1000))`` that makes all "good enough"
choices tie, and ties going to the first node of a fixed node order (which packs the cluster
node by node and keeps the rest whole for multi-GPU pods).

What it changes:

- pod types are learned from the arrivals seen so far (re-learned after 1, 2, ... 32 pods,
  then at doubling counts and every 1,024), never read from the trace file, and all types
  seen are kept (no 95% cut);
- inside the chosen node a shared pod takes the GPU with the best *exact* fragmentation drop
  (FGD takes the first GPU with the best integer score);
- every pod, CPU-only pods included, keeps CPU and memory headroom in proportion to the idle
  GPU capacity: the exact fragmentation drop of a choice is reduced by ``headroom`` (1) x the
  growth of its node's *shortfall*, the idle GPU milli that the node's free CPU or memory
  could no longer serve at the CPU and memory per GPU milli of the GPU pods seen so far; the
  integer score and the node-order ties then apply as before, so CPU-only pods pack into
  nodes whose GPUs do not need the CPU instead of spreading over every node;
- a share only goes to a GPU whose shares, with it, are still part of a *fill pattern* of the
  optimal fractional packing of the shares seen so far (``gpupolicy.solver.simulate.patterns``: an LP over
  patterns by column generation, relearned after 64 shares, then at doubling counts and every
  1,024), when any such GPU exists; so a 320 joins a 650 rather than a 470, and 470s pair up.
  Among those choices the score and node order apply as before. This took `default` from
  95.92 to 96.26 (FGD: 95.38; the proven ceiling, ``gpupolicy.solver.simulate.bound``: 96.50). With more
  than ``patterns_sizes`` (64) distinct share sizes the rule is off: per-choice checks would
  cost too much, and such a mix has no few patterns to steer to;
- the options ``step``/``tau``/``measure``/``pack_weight``/``order``/``weight_by``/``cpu_guard``/
  ``cpu_surplus``/``mem_surplus`` and ``headroom_need`` other than 1 are the variants we
  measured and did not keep (documented in the results).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from gpupolicy.solver.simulate.candidates import Candidates, enumerate_choices
from gpupolicy.solver.simulate.cluster import Placement
from gpupolicy.solver.simulate.fgd import FragAware
from gpupolicy.solver.simulate.patterns import OnTrack, Pattern, efficient_patterns
from gpupolicy.solver.simulate.protocol import typical_types
from gpupolicy.solver.simulate.strategies import Context


@dataclass(frozen=True)
class OnlineConfig:
    coverage: float = 1.0  # every type seen so far (FGD's 95% cut measured 0.1 point worse)
    refresh_first: int = 32  # relearn the type mix after this many arrivals, then doubling
    refresh_every: int = 1024
    tolerance: float = 1e-6  # frag deltas closer than this are ties
    learn: bool = True
    quantize: bool = True
    step: float = 0.0  # when > 0, frag deltas are compared in steps of this many milli
    tau: float = 0.0  # when > 0, every choice within tau milli of the best frag delta ties
    pack_weight: float = 0.0
    measure: str = "fgd"  # or "fill"
    with_memory: bool = False
    cpu_weight: float = 1.0
    order: str = "random"  # node order for ties: random, small-first, large-first
    weight_by: str = "count"  # typical-type weights: count or gpu (count x GPU milli)
    gpu_exact: bool = True  # inside the chosen node, take the GPU with the best exact delta
    cpu_guard: float = 0.0  # > 0: among ties, avoid leaving less CPU than guard x need of idle GPUs
    cpu_surplus: bool = False  # True: CPU-only pods go where CPU most exceeds what the idle GPUs will need
    mem_surplus: bool = False  # the same for memory: the scarcer of CPU and memory headroom decides
    headroom: float = 1.0  # a pod pays this x the idle GPU milli its node's CPU/memory could no longer serve
    headroom_need: float = 1.0  # the CPU/memory per idle GPU milli kept free, x the average of GPU pods seen
    fill_patterns: bool = True  # shares keep their GPU on track to a pattern of the optimal packing of shares seen
    patterns_first: int = 64  # learn the patterns after this many shares, then at doubling counts
    patterns_sizes: int = 64  # more distinct share sizes than this: no patterns (the per-choice check would be slow)


class Online(FragAware):
    name = "online"

    def __init__(self, config: OnlineConfig | None = None) -> None:
        self.config = config or OnlineConfig()

    def reset(self, ctx: Context) -> None:
        super().reset(ctx)
        self.measure = self.config.measure
        self.cpu_weight = self.config.cpu_weight
        self.seen: Counter[tuple[int, ...]] = Counter()
        self.next_refresh = 1
        self.gpu_cpu, self.gpu_mem, self.gpu_milli = 0, 0, 0
        self.rank = ctx.rank
        if self.config.order != "random":
            nd = ctx.cluster.nodes
            gpus = nd.gpus
            ratio = nd.cpu / np.maximum(gpus, 1)
            keys = {"small-first": gpus, "large-first": -gpus, "cpu-rich-first": -ratio, "cpu-poor-first": ratio}
            key = keys[self.config.order]
            self.rank = np.lexsort((ctx.rank, key)).argsort().astype(np.int64)
        if not self.config.learn:
            self.set_types(ctx.typical)
        self.contents: dict[tuple[int, int], Pattern] = {}  # shares on each partly used GPU
        self.shares_seen: Counter[int] = Counter()
        self.on_track = OnTrack(())
        self.next_patterns = self.config.patterns_first

    def _learn_patterns(self, milli: int) -> None:
        self.shares_seen[milli] += 1
        n = sum(self.shares_seen.values())
        if n >= self.next_patterns:
            many = len(self.shares_seen) > self.config.patterns_sizes
            self.on_track = OnTrack(() if many else efficient_patterns(self.shares_seen))
            self.next_patterns = n + min(n, self.config.refresh_every)

    def _keep_on_track(self, cand: Candidates, milli: int) -> np.ndarray:
        """Choices whose GPU would still hold part of an efficient pattern (all, if none would)."""
        gpu = np.argmax(cand.use, axis=1)
        ok = np.array(
            [
                tuple(sorted((*self.contents.get((int(n), int(g)), ()), milli))) in self.on_track
                for n, g in zip(cand.node, gpu, strict=True)
            ],
            dtype=bool,
        )
        return ok if ok.any() else np.ones(cand.count, dtype=bool)

    def commit(self, i: int, placement: Placement) -> None:
        super().commit(i, placement)
        milli = int(self.pods.milli[i]) if i >= 0 else 0
        if milli and self.pods.num_gpu[i] == 1 and milli < 1000 and placement.gpus:
            key = (placement.node, placement.gpus[0])
            self.contents[key] = tuple(sorted((*self.contents.get(key, ()), milli)))

    def _observe(self, i: int) -> None:
        p = self.pods
        key: tuple[int, ...] = (int(p.cpu[i]), int(p.milli[i]), int(p.num_gpu[i]), int(p.spec_mask[i]))
        if self.config.with_memory:
            key = (*key, int(p.mem[i]))
        self.seen[key] += 1
        if p.num_gpu[i] > 0:
            self.gpu_cpu += int(p.cpu[i])
            self.gpu_mem += int(p.mem[i])
            self.gpu_milli += int(p.gpu_request[i])
        n = sum(self.seen.values())
        if self.config.learn and n >= self.next_refresh:
            types = typical_types(self.seen, self.config.coverage)
            if self.config.weight_by == "gpu":
                w = types.weight * np.maximum(types.milli * types.num, 100)
                types = replace(types, weight=w / w.sum())
            self.set_types(types)
            if n < self.config.refresh_first:
                self.next_refresh = n + 1
            else:
                self.next_refresh = n + min(n, self.config.refresh_every)

    def _shortfall(self, idle: np.ndarray, cpu: np.ndarray, mem: np.ndarray) -> np.ndarray:
        """Idle GPU milli that the CPU or memory left could not serve at the learned per-milli needs."""
        need = self.config.headroom_need
        by_cpu = idle - cpu * (self.gpu_milli / max(need * self.gpu_cpu, 1))
        by_mem = idle - mem * (self.gpu_milli / max(need * self.gpu_mem, 1))
        return np.maximum(0.0, np.maximum(by_cpu, by_mem))

    def _shortfall_growth(self, cand: Candidates, i: int) -> np.ndarray:
        c = self.cluster
        before = self._shortfall(c.gpu_free[cand.node].sum(axis=1), c.cpu_free[cand.node], c.mem_free[cand.node])
        mem_after = c.mem_free[cand.node] - self.pods.mem[i]
        after = self._shortfall(cand.free_after.sum(axis=1), cand.cpu_after, mem_after)
        return np.asarray(after - before, dtype=np.float64)

    def place(self, i: int) -> Placement | None:
        self._observe(i)
        milli = int(self.pods.milli[i])
        share = self.config.fill_patterns and self.pods.num_gpu[i] == 1 and milli < 1000
        if share:
            self._learn_patterns(milli)
        self._pending_mem = int(self.pods.mem[i])
        c = self.cluster
        cand = enumerate_choices(c, self.pods, i)
        if cand.count == 0:
            return None
        if self.config.cpu_surplus and self.pods.num_gpu[i] == 0 and self.gpu_milli:
            idle = c.gpu_free[cand.node].sum(axis=1)
            surplus = cand.cpu_after - idle * (self.gpu_cpu / self.gpu_milli)
            if self.config.mem_surplus:
                mem_left = c.mem_free[cand.node] - self.pods.mem[i] - idle * (self.gpu_mem / self.gpu_milli)
                nd = c.nodes
                surplus = np.minimum(surplus / nd.cpu[cand.node], mem_left / nd.mem[cand.node])
            best = np.flatnonzero(surplus >= surplus.max() - 1e-9)
            return cand.placement(int(best[np.argmin(self.rank[cand.node[best]])]))
        exact = self.frag_delta(cand)
        if self.config.headroom > 0 and self.gpu_milli:
            exact = exact - self.config.headroom * self._shortfall_growth(cand, i)
        delta = exact
        if self.config.quantize:
            delta = np.trunc(100.0 / (1.0 + np.exp(-exact / 1000.0)))
        elif self.config.step > 0:
            delta = np.floor(exact / self.config.step)
        if share and self.on_track:
            delta = np.where(self._keep_on_track(cand, milli), delta, -np.inf)
        slack = self.config.tau if self.config.tau > 0 else self.config.tolerance
        tie = np.flatnonzero(delta >= delta.max() - slack)
        if len(tie) > 1 and self.config.cpu_guard > 0 and self.gpu_milli:
            need = cand.free_after[tie].sum(axis=1) * (self.config.cpu_guard * self.gpu_cpu / self.gpu_milli)
            safe = tie[cand.cpu_after[tie] >= need]
            if len(safe):
                tie = safe
        if len(tie) > 1 and self.config.pack_weight:
            left = cand.free_after[tie].sum(axis=1) / 8000.0 + cand.cpu_after[tie] / 128000.0
            key = left * self.config.pack_weight
            tie = tie[key <= key.min() + 1e-12]
        node = cand.node[tie][np.argmin(self.rank[cand.node[tie]])]
        same = tie[cand.node[tie] == node]
        if self.config.gpu_exact:
            return cand.placement(int(same[np.argmax(exact[same])]))
        return cand.placement(int(same[0]))
