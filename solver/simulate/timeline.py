"""Replay over time: pods arrive, wait in a queue when nothing fits, run, and leave.

The model (``docs/simulate.md``, "Timeline replay"):

- pod ``i`` arrives at ``creation_time`` (the gaps between arrivals divided by ``load``), runs for
  ``deletion_time - scheduled_time`` from the moment it is placed, then leaves and gives back exactly
  what it held (:meth:`Cluster.remove`, then the strategy's ``release`` hook);
- a pod that does not fit waits. The queue is ordered by priority (``qos``, see
  :data:`gpupolicy.solver.simulate.times.PRIORITY`), then arrival. As in kube-scheduler, a cluster
  change (a departure) moves every waiting pod back to the active queue, and the active queue is
  tried in order; a pod that fails waits again. Simplified: no backoff (pods are retried at the
  instant of the departure) and one scheduling cycle at a time, in zero time;
- retrying a thousand waiting pods after every departure would be slow, so only the pods that fit on
  a node that gained capacity are retried: a waiting pod fitted nowhere when it last failed, and since
  then only those nodes gained, so no other pod can fit (an exact filter, not a heuristic; ``batch``,
  which may leave out a pod that fits, is the one strategy where it can delay a retry);
- events at the same instant: every departure first, then one round over the new arrivals and the
  retried pods together, in queue order.

Everything is updated incrementally per event: used GPU milli, the per-node fragmentation cache
(refreshed only for nodes that changed), the time integrals.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gpupolicy.solver.simulate.cluster import Cluster, Placement
from gpupolicy.solver.simulate.protocol import PodTypes, type_counts, typical_types
from gpupolicy.solver.simulate.strategies import Context, Strategy
from gpupolicy.solver.simulate.times import Times
from gpupolicy.solver.simulate.trace import Nodes, Pods

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Workload:
    """The pods the timeline replays, in arrival order, with their times (``load`` already applied)."""

    pods: Pods
    arrival: F64  # seconds from the first arrival
    duration: F64
    priority: I64
    qos: tuple[str, ...]
    skipped: int  # rows without a scheduled_time (never ran in the trace)

    @property
    def count(self) -> int:
        return self.pods.count


def workload(pods: Pods, times: Times, load: float = 1.0, repeat: int = 1) -> Workload:
    """The replayable rows in arrival order (ties: file order), the trace laid ``repeat`` times end to end
    (each copy starts one trace span plus one mean gap after the previous one), then the gaps between
    arrivals divided by ``load``."""
    rows = np.flatnonzero(times.kept)
    rows = rows[np.argsort(times.arrival[rows], kind="stable")]
    arrival = times.arrival[rows]
    start = float(arrival[0]) if len(arrival) else 0.0
    one = arrival - start
    span = float(one[-1]) if len(one) else 0.0
    period = span + (span / (len(one) - 1) if len(one) > 1 else 1.0)
    copies = np.arange(repeat)
    return Workload(
        pods=pods.take(np.tile(rows, repeat)),
        arrival=(np.tile(one, repeat) + np.repeat(copies * period, len(one))) / load,
        duration=np.tile(times.duration[rows], repeat),
        priority=np.tile(times.priority[rows], repeat),
        qos=tuple(times.qos[r] for r in rows) * repeat,
        skipped=int((~times.kept).sum()) * repeat,
    )


@dataclass
class TimelineResult:
    """One seed of one strategy. Times are seconds from the first arrival."""

    strategy: str
    seed: int
    wait: F64  # per pod in arrival order: placement time - arrival (NaN: never placed)
    priority: I64
    qos: tuple[str, ...]
    t: F64  # event instants
    used: F64  # GPU milli in use just after each instant
    queue: I64  # pods waiting just after each instant
    frag: F64  # FGD fragmentation (GPU milli) just after each instant
    capacity: float  # GPU milli of the cluster
    last_arrival: float
    seconds: float
    skipped: int = 0
    retries: int = 0  # place() calls for pods that had waited
    evictions: int = 0  # no strategy preempts yet
    placed_at: F64 = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def never_placed(self) -> int:
        return int(np.isnan(self.wait).sum())

    def mean_over(self, values: F64, end: float) -> float:
        """Time average of a step function (value after each instant) over [0, end]."""
        if end <= 0 or len(self.t) == 0:
            return float(values[-1]) if len(values) else 0.0
        t = np.minimum(np.append(self.t, end), end)
        return float((values * np.diff(t)).sum() / end)


def _fit_on(cluster: Cluster, pods: Pods, cand: I64, node: int) -> BOOL:
    """Which pods of ``cand`` fit on ``node`` as it is now (Cluster.feasible's rule, one node, many pods)."""
    ok = (pods.cpu[cand] <= cluster.cpu_free[node]) & (pods.mem[cand] <= cluster.mem_free[node])
    num = pods.num_gpu[cand]
    free = np.sort(cluster.gpu_free[node])
    count_ge = len(free) - np.searchsorted(free, pods.milli[cand], side="left")
    gpu_ok = ((cluster.model_bits[node] & pods.spec_mask[cand]) != 0) & (count_ge >= num)
    return np.asarray(ok & ((num == 0) | gpu_ok), dtype=np.bool_)


class FragMeter:
    """FGD's fragmentation (:func:`gpupolicy.solver.simulate.frag.fgd`) for a fixed set of types, with
    what depends only on the types computed once."""

    def __init__(self, types: PodTypes) -> None:
        self.types = types
        self.uniq, self.uidx = np.unique(np.where(types.milli > 0, types.milli, 1), return_inverse=True)
        self.gpu_type = types.milli > 0

    def nodes(self, cpu_left: I64, bits: I64, free: I64) -> F64:
        """Fragmentation (GPU milli) of each node row."""
        t = self.types
        idle = free.sum(axis=1).astype(np.float64)
        ge = free[:, :, None] >= self.uniq[None, None, :]
        count = ge.sum(axis=1)[:, self.uidx]
        small = np.where(ge, 0, free[:, :, None]).sum(axis=1)[:, self.uidx].astype(np.float64)
        ok = self.gpu_type[None, :] & ((bits[:, None] & t.mask[None, :]) != 0)
        ok &= count >= t.num[None, :]
        ok &= cpu_left[:, None] >= t.cpu[None, :]
        return np.asarray(np.where(ok, small, idle[:, None]) @ t.weight, dtype=np.float64)


class _Queue:
    """Waiting pods, ordered by (priority desc, arrival); kept as a boolean mask over arrival order."""

    def __init__(self, work: Workload) -> None:
        self.work = work
        self.waiting = np.zeros(work.count, dtype=np.bool_)
        self.length = 0
        self._index: I64 | None = None

    def add(self, i: int) -> None:
        self.waiting[i] = True
        self.length += 1
        self._index = None

    def take(self, i: int) -> None:
        self.waiting[i] = False
        self.length -= 1
        self._index = None

    def members(self) -> I64:
        if self._index is None:
            self._index = np.flatnonzero(self.waiting)
        return self._index

    def retry(self, cluster: Cluster, gained: set[int]) -> I64:
        """Waiting pods that fit on a node that gained capacity."""
        cand = self.members()
        if len(cand) == 0 or not gained:
            return cand[:0]
        hit = np.zeros(len(cand), dtype=np.bool_)
        for n in gained:
            hit |= _fit_on(cluster, self.work.pods, cand, n)
        return cand[hit]

    def order(self, pods: I64) -> list[int]:
        """``pods`` in queue order: higher priority first, then earlier arrival."""
        keys = np.lexsort((pods, -self.work.priority[pods]))
        return [int(x) for x in pods[keys]]


def replay_timeline(
    nodes: Nodes, work: Workload, strategy: Strategy, seed: int, check: bool = False, typical_pods: Pods | None = None
) -> TimelineResult:
    """Replay ``work`` with ``strategy``; ``seed`` gives the node order for ties and the random stream
    (as :meth:`Replay.run` does); ``typical_pods`` (default: the workload) gives FGD's typical pods."""
    pods = work.pods
    cluster = Cluster(nodes)
    rng = np.random.default_rng(seed + 7919)
    rank = np.argsort(rng.permutation(nodes.count)).astype(np.int64)
    typical = typical_types(type_counts(typical_pods if typical_pods is not None else pods), 0.95)
    strategy.reset(Context(cluster, pods, rng, typical, rank))
    return _Engine(nodes, work, strategy, cluster, typical, check).run(seed)


class _Engine:
    def __init__(
        self, nodes: Nodes, work: Workload, strategy: Strategy, cluster: Cluster, typical: PodTypes, check: bool
    ) -> None:
        self.nodes, self.work, self.strategy, self.cluster, self.check = nodes, work, strategy, cluster, check
        self.typical = typical
        self.queue = _Queue(work)
        self.where: dict[int, Placement] = {}
        self.departures: list[tuple[float, int]] = []
        n = work.count
        self.placed_at = np.full(n, np.nan)
        self.retries = 0
        self.meter = FragMeter(typical)
        self.node_frag = self.meter.nodes(cluster.cpu_free, cluster.model_bits, cluster.gpu_free)
        self.touched: set[int] = set()

    def _refresh_frag(self) -> None:
        if not self.touched:
            return
        c = self.cluster
        rows = np.fromiter(self.touched, dtype=np.int64, count=len(self.touched))
        self.node_frag[rows] = self.meter.nodes(c.cpu_free[rows], c.model_bits[rows], c.gpu_free[rows])
        self.touched.clear()

    def _depart(self, i: int) -> int:
        p = self.where.pop(i)
        self.cluster.remove(self.work.pods, i, p)
        self.strategy.release(i, p)
        self.touched.add(p.node)
        return p.node

    def _round(self, now: float, tries: list[int], gained: set[int]) -> None:
        """Try ``tries`` (in queue order) once each. A waiting pod is only tried while it still fits on a
        node in ``gained`` (it fits nowhere else), rechecked after each placement on such a node."""
        if not tries:
            return
        self.strategy.plan(tries)
        pods = self.work.pods
        order = np.array(tries, dtype=np.int64)
        waited = self.queue.waiting[order]
        # still[k, j]: pod tries[k] fits on the j-th gained node (arrivals: always tried)
        nodes = sorted(gained)
        col = {n: j for j, n in enumerate(nodes)}
        still = np.stack([_fit_on(self.cluster, pods, order, n) for n in nodes], axis=1) if nodes else None
        alive = ~waited if still is None else ~waited | still.any(axis=1)
        k = -1
        while True:
            ahead = np.flatnonzero(alive[k + 1 :])
            if len(ahead) == 0:
                break
            k += 1 + int(ahead[0])
            i = tries[k]
            if waited[k]:
                self.retries += 1
            placement = self.strategy.place(i)
            if placement is None:
                if not waited[k]:
                    self.queue.add(i)
                continue
            if waited[k]:
                self.queue.take(i)
            self._place(now, i, placement)
            j = col.get(placement.node)
            if still is not None and j is not None and k + 1 < len(tries):
                still[k + 1 :, j] = _fit_on(self.cluster, pods, order[k + 1 :], placement.node)
                alive[k + 1 :] = ~waited[k + 1 :] | still[k + 1 :].any(axis=1)

    def _place(self, now: float, i: int, placement: Placement) -> None:
        self.cluster.place(self.work.pods, i, placement)
        self.strategy.commit(i, placement)
        self.where[i] = placement
        self.touched.add(placement.node)
        self.placed_at[i] = now
        heapq.heappush(self.departures, (now + float(self.work.duration[i]), i))
        if self.check:
            self.cluster.check()

    def run(self, seed: int) -> TimelineResult:
        work = self.work
        n = work.count
        ts: list[float] = []
        used: list[float] = []
        queue: list[int] = []
        frags: list[float] = []
        nxt = 0
        start = time.perf_counter()
        while nxt < n or self.departures:
            now = float(work.arrival[nxt]) if nxt < n else np.inf
            if self.departures and self.departures[0][0] <= now:
                now = self.departures[0][0]
            gained: set[int] = set()
            while self.departures and self.departures[0][0] <= now:
                _, i = heapq.heappop(self.departures)
                gained.add(self._depart(i))
                if self.check:
                    self.cluster.check()
            arrivals: list[int] = []
            while nxt < n and work.arrival[nxt] <= now:
                arrivals.append(nxt)
                nxt += 1
            retry = self.queue.retry(self.cluster, gained)
            tries = np.concatenate([retry, np.array(arrivals, dtype=np.int64)])
            self._round(now, self.queue.order(tries), gained)
            self._refresh_frag()
            ts.append(now)
            used.append(float(self.cluster.used_milli))
            queue.append(self.queue.length)
            frags.append(float(self.node_frag.sum()))
        seconds = time.perf_counter() - start
        wait = self.placed_at - work.arrival
        return TimelineResult(
            strategy=self.strategy.name,
            seed=seed,
            wait=wait,
            priority=work.priority,
            qos=work.qos,
            t=np.array(ts),
            used=np.array(used),
            queue=np.array(queue, dtype=np.int64),
            frag=np.array(frags),
            capacity=float(self.nodes.total_gpu_milli),
            last_arrival=float(work.arrival[-1]) if n else 0.0,
            seconds=seconds,
            skipped=work.skipped,
            retries=self.retries,
            placed_at=self.placed_at,
        )
