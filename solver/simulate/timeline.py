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
(refreshed only for nodes that changed), the series the time averages are taken over. The engine works
on a :class:`Backend` (the openb cluster and strategy here, MIG in
:mod:`gpupolicy.solver.simulate.timeline_mig`).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    used: F64  # in use just after each instant (GPU milli; MIG: compute slices)
    queue: I64  # pods waiting just after each instant
    frag: F64  # fragmentation just after each instant (FGD's, GPU milli; MIG: lost slices)
    capacity: float  # the cluster's GPU milli (MIG: compute slices)
    last_arrival: float
    seconds: float
    skipped: int = 0
    retries: int = 0  # place() calls for pods that had waited
    evictions: int = 0  # no strategy preempts yet
    placed_at: F64 = field(default_factory=lambda: np.zeros(0), repr=False)
    kind: npt.NDArray[np.str_] = field(default_factory=lambda: np.zeros(0, dtype=np.str_), repr=False)

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


class Backend(Protocol):
    """What the engine needs of a cluster model and its strategy (openb GPUs here, MIG in
    :mod:`gpupolicy.solver.simulate.timeline_mig`). A decision is whatever ``decide`` returns."""

    name: str
    capacity: float  # what ``used`` is a share of (GPU milli, or MIG compute slices)
    n_nodes: int

    def plan(self, pods: list[int]) -> None: ...

    def decide(self, i: int) -> Any | None: ...

    def apply(self, i: int, decision: Any) -> int: ...  # the node

    def release(self, i: int, decision: Any) -> int: ...  # the node

    def fits_on(self, cand: I64, node: int) -> BOOL: ...

    def used(self) -> float: ...

    def frag(self, rows: I64) -> F64: ...  # fragmentation (in capacity units) of these nodes

    def check(self) -> None: ...


class OpenbBackend:
    """The openb cluster (:class:`Cluster`) with one of the strategies of ``run.STRATEGIES``."""

    def __init__(self, cluster: Cluster, pods: Pods, strategy: Strategy, typical: PodTypes) -> None:
        self.cluster, self.pods, self.strategy = cluster, pods, strategy
        self.name = strategy.name
        self.capacity = float(cluster.nodes.total_gpu_milli)
        self.n_nodes = cluster.nodes.count
        self.meter = FragMeter(typical)

    def plan(self, pods: list[int]) -> None:
        self.strategy.plan(pods)

    def decide(self, i: int) -> Placement | None:
        return self.strategy.place(i)

    def apply(self, i: int, decision: Placement) -> int:
        self.cluster.place(self.pods, i, decision)
        self.strategy.commit(i, decision)
        return decision.node

    def release(self, i: int, decision: Placement) -> int:
        self.cluster.remove(self.pods, i, decision)
        self.strategy.release(i, decision)
        return decision.node

    def fits_on(self, cand: I64, node: int) -> BOOL:
        return _fit_on(self.cluster, self.pods, cand, node)

    def used(self) -> float:
        return float(self.cluster.used_milli)

    def frag(self, rows: I64) -> F64:
        c = self.cluster
        return self.meter.nodes(c.cpu_free[rows], c.model_bits[rows], c.gpu_free[rows])

    def check(self) -> None:
        self.cluster.check()


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

    def retry(self, backend: Backend, gained: set[int]) -> I64:
        """Waiting pods that fit on a node that gained capacity."""
        cand = self.members()
        if len(cand) == 0 or not gained:
            return cand[:0]
        hit = np.zeros(len(cand), dtype=np.bool_)
        for n in gained:
            hit |= backend.fits_on(cand, n)
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
    return Engine(work, OpenbBackend(cluster, pods, strategy, typical), check).run(seed)


class Engine:
    """The event loop: departures in a heap, arrivals in order, the queue, the measures."""

    def __init__(self, work: Workload, backend: Backend, check: bool, every_retry: bool = False) -> None:
        """``every_retry``: after a departure retry every waiting pod, not only those that fit on a node that
        gained (slow; the tests use it to show the filter changes nothing)."""
        self.work, self.backend, self.check, self.every_retry = work, backend, check, every_retry
        self.queue = _Queue(work)
        self.where: dict[int, Any] = {}
        self.departures: list[tuple[float, int]] = []
        self.placed_at = np.full(work.count, np.nan)
        self.retries = 0
        self.node_frag = backend.frag(np.arange(backend.n_nodes))
        self.touched: set[int] = set()

    def _refresh_frag(self) -> None:
        if not self.touched:
            return
        rows = np.fromiter(self.touched, dtype=np.int64, count=len(self.touched))
        self.node_frag[rows] = self.backend.frag(rows)
        self.touched.clear()

    def _depart(self, i: int) -> int:
        node = self.backend.release(i, self.where.pop(i))
        self.touched.add(node)
        return node

    def _round(self, now: float, tries: list[int], gained: set[int]) -> None:
        """Try ``tries`` (in queue order) once each. A waiting pod is only tried while it still fits on a
        node in ``gained`` (it fits nowhere else), rechecked after each placement on such a node."""
        if not tries:
            return
        backend = self.backend
        backend.plan(tries)
        order = np.array(tries, dtype=np.int64)
        waited = self.queue.waiting[order]
        # still[k, j]: pod tries[k] fits on the j-th gained node (arrivals: always tried)
        nodes = sorted(gained)
        col = {n: j for j, n in enumerate(nodes)}
        still = np.stack([backend.fits_on(order, n) for n in nodes], axis=1) if nodes else None
        alive = ~waited if still is None else ~waited | still.any(axis=1)
        if self.every_retry:
            alive[:] = True
        k = -1
        while True:
            ahead = np.flatnonzero(alive[k + 1 :])
            if len(ahead) == 0:
                break
            k += 1 + int(ahead[0])
            i = tries[k]
            if waited[k]:
                self.retries += 1
            decision = backend.decide(i)
            if decision is None:
                if not waited[k]:
                    self.queue.add(i)
                continue
            if waited[k]:
                self.queue.take(i)
            node = self._place(now, i, decision)
            j = col.get(node)
            if still is not None and j is not None and k + 1 < len(tries) and not self.every_retry:
                still[k + 1 :, j] = backend.fits_on(order[k + 1 :], node)
                alive[k + 1 :] = ~waited[k + 1 :] | still[k + 1 :].any(axis=1)

    def _place(self, now: float, i: int, decision: Any) -> int:
        node = self.backend.apply(i, decision)
        self.where[i] = decision
        self.touched.add(node)
        self.placed_at[i] = now
        heapq.heappush(self.departures, (now + float(self.work.duration[i]), i))
        if self.check:
            self.backend.check()
        return node

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
                    self.backend.check()
            arrivals: list[int] = []
            while nxt < n and work.arrival[nxt] <= now:
                arrivals.append(nxt)
                nxt += 1
            retry = self.queue.members() if self.every_retry and gained else self.queue.retry(self.backend, gained)
            tries = np.concatenate([retry, np.array(arrivals, dtype=np.int64)])
            self._round(now, self.queue.order(tries), gained)
            self._refresh_frag()
            ts.append(now)
            used.append(self.backend.used())
            queue.append(self.queue.length)
            frags.append(float(self.node_frag.sum()))
        seconds = time.perf_counter() - start
        wait = self.placed_at - work.arrival
        return TimelineResult(
            strategy=self.backend.name,
            seed=seed,
            wait=wait,
            priority=work.priority,
            qos=work.qos,
            t=np.array(ts),
            used=np.array(used),
            queue=np.array(queue, dtype=np.int64),
            frag=np.array(frags),
            capacity=self.backend.capacity,
            last_arrival=float(work.arrival[-1]) if n else 0.0,
            seconds=seconds,
            skipped=work.skipped,
            retries=self.retries,
            placed_at=self.placed_at,
            kind=work.pods.kind(),
        )
