"""The controller's reconcile loop.

On every change a watch reports (or every ``poll_interval_s`` without watches) the leader reads the cluster
(:class:`Snapshot`, from the cache the watches keep, :mod:`cache`). Ready units (gated pods whose claims
exist) are batched: a batch closes ``batch_window_s`` after its first unit was seen, or at once when it holds
``max_batch`` units, then it is solved in one go
(:func:`placer.plan`), written (:func:`commit.commit`) and the unplaced pods are told why (:mod:`report`). An
unplaced unit is not solved again until the inventory changes: ResourceSlices, DeviceClasses or the set of
allocated devices (claims allocated or released, by us or by the scheduler). Units left complete or partial by a
replica that stopped mid-batch are finished (gates removed, once a fresh list of claims shows their devices held by
no one else) or released (our allocations cleared, solved again).

Writes go through :class:`~gpupolicy.plugin.controller.fence.Fenced`: each is sent only while this replica is
sure to hold the Lease. A unit that makes compiling, solving or writing raise fails alone (:data:`STAGES`): its
pods get the unplaced condition and an Event, the other units go on.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from gpupolicy.plugin.controller import fingerprint as fp
from gpupolicy.plugin.controller import report
from gpupolicy.plugin.controller.cache import SYNC_TIMEOUT_S, Cache, kinds, start
from gpupolicy.plugin.controller.commit import commit, devices, release, ungate
from gpupolicy.plugin.controller.fence import Fenced, Index, NotLeader, clash
from gpupolicy.plugin.controller.leader import LeaderElector
from gpupolicy.plugin.controller.metrics import Metrics
from gpupolicy.plugin.controller.placer import Failure, LoadCache, Plan, Settings, plan_isolated
from gpupolicy.plugin.controller.preempt import Options, Preemption, Scan
from gpupolicy.plugin.controller.snapshot import ClaimRef, Snapshot, State, Unit, allocation, ours, ref, units
from gpupolicy.plugin.kube import Api, ApiError, Obj
from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.solver.result import Reason

log = logging.getLogger(__name__)
STAGES = {"compile": "compile the claims of", "solve": "solve", "write": "write the claims of", "recover": "recover"}
MAX_ERROR = 300
SYNC_WAIT_S = 5.0  # `run` waits this long for the cache's first lists; passes list the cluster until then


@dataclass
class Config:
    identity: str
    settings: Settings = field(default_factory=Settings)
    batch_window_s: float = 0.5
    poll_interval_s: float = 0.5
    write_parallelism: int = 8
    namespaces: tuple[str, ...] = ()  # only gated pods of these (all when empty)
    watch: bool = True  # a cache kept from watches (cache.py), its events wake the loop; else list every poll
    resync_s: float = 10.0  # with watches: a full pass at least this often anyway
    disrupt: Options = field(default_factory=Options)  # preemption and defragmentation (off by default)
    max_batch: int = 500  # units per batch: a full batch closes at once, the rest wait for the next one


@dataclass
class StepResult:
    solved: bool = False
    placed: list[str] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)  # complete units whose gates a step removed
    held: list[str] = field(default_factory=list)  # units that evicted pods and now hold devices for them
    evicted: list[str] = field(default_factory=list)  # pods evicted (ns/name)
    waiting: list[str] = field(default_factory=list)  # units whose hold waits for its victims
    released: list[str] = field(default_factory=list)
    deferred: bool = False  # ready units wait for the batch window to close
    more: bool = False  # ready units left for the next batch (this one was full): the next pass starts at once
    plan: Plan | None = None


def fingerprint(snapshot: Snapshot, extra: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """What a retry waits for: slices, classes and allocated devices (which claim holds which device), and who holds
    them with preemption/defragmentation (:mod:`fingerprint`; kept current by the cache, per event)."""
    return fp.of(snapshot, extra)


class Controller:
    def __init__(
        self,
        api: Api,
        config: Config,
        elector: LeaderElector | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        writes: Api | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """``api`` reads (and watches); ``writes`` (default ``api``) writes, each only while :meth:`may_write`.
        ``wall``: the wall clock of holds' deadlines (another leader reads them)."""
        self.reads, self.config, self.elector = api, config, elector
        self.informed: Cache | None = None  # the cluster as watches keep it (inform); lists until it is synced
        self.api = Fenced(api, writes or api, self.may_write, self._seen)
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.first_seen: dict[str, float] = {}
        self.failed: dict[str, tuple[str, frozenset[str]]] = {}  # unit -> (inventory, pod uids) when it failed
        self.failed_reason: dict[str, str] = {}
        self.left: set[str] = set()  # ready units a full batch left out: the next pass closes its batch at once
        self.cache = LoadCache()
        self.preemption = Preemption(config.disrupt, self.metrics, wall)

    def inform(
        self, stop: threading.Event, changed: Callable[[], None] = lambda: None, timeout_s: float = SYNC_TIMEOUT_S
    ) -> bool:
        """Keep a cache of the cluster from watches (list once, then watch; :mod:`cache`) until ``stop``, and read
        passes from it once every kind is listed (True then). False when the read API cannot inform (passes list)."""
        if getattr(self.reads, "inform", None) is None:
            return False
        self.informed = Cache(kinds(self.config.disrupt.on), changed)
        return start(self.reads, self.informed, stop, timeout_s)  # type: ignore[arg-type]

    def _seen(self, kind: str, obj: Obj) -> None:
        if self.informed is not None:
            self.informed.assume(kind, obj)

    def read(self) -> Snapshot:
        """This pass's view of the cluster: from the cache when it is synced, else listed."""
        disruption = self.config.disrupt.on
        if self.informed is not None and self.informed.synced():
            return self.informed.snapshot(self.config.namespaces, disruption=disruption)
        return Snapshot.read(self.api, self.config.namespaces, disruption=disruption)

    def leading(self) -> bool:
        """Leader now, renewing the Lease when due (an API call)."""
        return self.elector is None or self.elector.ensure()

    def may_write(self) -> bool:
        """Checked right before each write: the Lease renewed within the renew deadline, by the local clock."""
        return self.elector is None or self.elector.is_leader()

    def step(self, *, force: bool = False) -> StepResult:
        """One pass; ``force`` ignores the batch window (tests, benchmarks)."""
        out = StepResult()
        snapshot = self.read()
        all_units = units(snapshot)
        self._recover(all_units, snapshot, out)
        scan = self.preemption.scan(self.api, all_units, snapshot) if self.leading() else Scan()
        out.waiting = list(scan.waiting)
        inventory = fingerprint(snapshot, self._allowance())
        now = self.clock()
        live = {u.key for u in all_units}
        self.first_seen = {k: v for k, v in self.first_seen.items() if k in live}
        self.failed = {k: v for k, v in self.failed.items() if k in live}
        ready = [
            u
            for u in all_units
            if u.state == State.READY and u.key not in scan.waiting and self.failed.get(u.key) != (inventory, _uids(u))
        ]
        for unit in ready:
            self.first_seen.setdefault(unit.key, now)
        self.metrics.pending_pods.set(len(snapshot.pods))
        full = len(ready) >= self.config.max_batch or any(u.key in self.left for u in ready)
        if not ready or (
            not force and not full and now - min(self.first_seen[u.key] for u in ready) < self.config.batch_window_s
        ):
            out.deferred = bool(ready)
            self._unplaced_metric()
            return out
        # the oldest first (units() sorts by creation); a burst is cut into full batches, each closed at once
        ready = sorted(ready, key=lambda u: self.first_seen[u.key])
        batch = ready[: self.config.max_batch]
        self._batch(snapshot, batch, inventory, out, scan)
        out.more = len(batch) < len(ready)
        self.left = {u.key for u in ready[len(batch) :]} if out.more else set()
        return out

    def _recover(self, all_units: list[Unit], snapshot: Snapshot, out: StepResult) -> None:
        fresh: dict[ClaimRef, Obj] | None = None
        index = Index({})
        for unit in all_units:
            if unit.state not in (State.COMPLETE, State.PARTIAL) or not self.leading():
                continue
            try:
                if unit.state == State.COMPLETE:
                    if fresh is None:
                        fresh = {ref(c): c for c in self.api.list("resourceclaims")}
                        index = Index.of(fresh)
                    why = clash(unit.claims, fresh, before=snapshot.claims, index=index)
                    if not why:
                        for pod in unit.pods:
                            ungate(self.api, pod)
                        out.finished.append(unit.key)
                        log.info("gates removed for an allocated unit", extra={"unit": unit.key})
                        continue
                    log.warning("allocated unit not ungated: released", extra={"unit": unit.key, "reason": why})
                    fresh = None
                for claim in unit.claims:
                    obj = snapshot.claims[claim]
                    if allocation(obj) is not None and ours(obj):
                        release(self.api, claim, _uids(unit))
                out.released.append(unit.key)
                if unit.state == State.PARTIAL:
                    log.warning("released a partly allocated unit", extra={"unit": unit.key})
            except ApiError:  # the API server, or the Lease: the whole pass stops
                raise
            except Exception as exc:  # one unit's bad object must not stop the others
                self._fail(unit, Failure("recover", exc), fingerprint(snapshot, self._allowance()), out)

    def _batch(self, snapshot: Snapshot, ready: list[Unit], inventory: str, out: StepResult, scan: Scan) -> None:
        by_key = {u.key: u for u in ready}
        claims = sum(len(u.claims) for u in ready)
        log.info("batch", extra={"units": len(ready), "claims": claims})
        settings = self.config.settings
        if self.config.disrupt.on:
            settings = dataclasses.replace(settings, disruption=self.preemption.disruption())
        result, failures = plan_isolated(snapshot, ready, settings, self.cache, scan.reserved)
        for problem in result.problems:
            log.warning("cluster object left out: it does not read cleanly", extra={"problem": problem})
        out.solved, out.plan = True, result
        self.metrics.solved(result.solve_s)
        log.info("solved", extra={"seconds": round(result.solve_s, 3), "status": result.status, "rounds": result.rounds,
                                  "placed": len(result.placed), "unplaced": len(result.unplaced)})  # fmt: skip
        if not self.leading():
            log.warning("not the leader any more; batch dropped", extra={"units": len(ready)})
            return
        executed = self.preemption.act(self.api, snapshot, by_key, result)
        out.held, out.evicted = list(executed.held), [name for name, _ in executed.evicted]
        for key in executed.held:
            self.first_seen.pop(key, None)
        done = commit(
            self.api,
            snapshot,
            by_key,
            result.placed,
            self.config.identity,
            self.leading,
            self.config.write_parallelism,
        )
        out.placed, out.skipped = done.committed, {k: v for k, v in done.skipped.items() if k not in done.failed}
        out.skipped |= executed.dropped
        failures |= {key: Failure("write", exc) for key, exc in done.failed.items()}
        written = {f"alloc:{c[0]}/{c[1]}:{'/'.join(d)}" for k in done.committed
                   for c, a in result.placed[k].items() for d in devices(a)}  # fmt: skip
        after = fingerprint(snapshot, written | self._allowance())
        for key in done.committed:
            self.failed.pop(key, None)
            self.failed_reason.pop(key, None)
            self.first_seen.pop(key, None)
            self.preemption.placed(key)
            for pod in by_key[key].pods:
                self._try(report.placed, pod)
            log.info("placed", extra={"unit": key, "claims": len(result.placed[key])})
        for key, why in (done.skipped | executed.dropped).items():
            log.warning("not committed; solved again next round", extra={"unit": key, "reason": why})
        for key, reasons in result.unplaced.items():
            unit = by_key[key]
            self.failed[key] = (after, _uids(unit))
            self.failed_reason[key] = reasons[0][1].code if reasons else "unknown"
            self.first_seen.pop(key, None)
            for pod in unit.pods:
                self._try(report.unplaced, pod, reasons)
            explanation = report.explanation(reasons)
            log.info("unplaced", extra={"unit": key, "reason": self.failed_reason[key], "explanation": explanation})
        out.unplaced = list(result.unplaced)
        for key, failure in failures.items():
            self._fail(by_key[key], failure, after, out)
        pods = sum(len(by_key[k].pods) for k in done.committed)
        self.metrics.placed_pods.inc(pods)
        self.metrics.placed_claims.inc(done.claims_written)
        self.metrics.conflicts.inc(done.conflicts)
        self._unplaced_metric()

    def _allowance(self) -> set[str]:
        """What the solve may disrupt is part of what a retry waits for: an hour's moves spent, then free again."""
        return {f"disruption:{self.preemption.disruption()}"} if self.config.disrupt.on else set()

    def _fail(self, unit: Unit, failure: Failure, inventory: str, out: StepResult) -> None:
        """A unit that made the controller raise: logged with its context, reported on its pods as unplaced, and
        tried again only when the inventory or its pods change."""
        error = f"{type(failure.error).__name__}: {failure.error}"
        error = error if len(error) <= MAX_ERROR else error[: MAX_ERROR - 1] + "…"
        code = f"{failure.stage}_failed"
        log.error("a unit failed; the others go on", extra={"unit": unit.key, "stage": failure.stage, "error": error})
        log.debug("the failure's traceback", extra={"unit": unit.key}, exc_info=failure.error)
        why = Reason(code, f"the controller could not {STAGES[failure.stage]} {unit.key}: {error}")
        reasons = [(claim, why) for claim in unit.claims] or [(ref(unit.pods[0]), why)]
        self.failed[unit.key] = (inventory, _uids(unit))
        self.failed_reason[unit.key] = code
        self.first_seen.pop(unit.key, None)
        for pod in unit.pods:
            self._try(report.unplaced, pod, reasons)
        out.unplaced.append(unit.key)

    def _unplaced_metric(self) -> None:
        reasons = Counter(self.failed_reason[k] for k in self.failed if k in self.failed_reason)
        self.metrics.unplaced.set({(reason,): count for reason, count in reasons.items()})

    def _try(self, fn: Callable[..., object], pod: Obj, *args: object) -> None:
        try:
            fn(self.api, pod, *args)
        except ApiError as exc:
            log.warning("could not report on a pod", extra={"pod": pod["metadata"]["name"], "error": str(exc)})
        except Exception as exc:  # a pod whose status does not read: report on the others
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
            log.error("could not report on a pod", extra={"pod": pod["metadata"].get("name"), "error": error})

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set: hold the Lease, place. With watches, a pass runs when pods, claims or slices change
        (and every ``resync_s``); without, every ``poll_interval_s``."""
        wake = threading.Event()
        watch = getattr(self.reads, "watch", None) if self.config.watch else None
        if self.config.watch:
            self.inform(stop, wake.set, timeout_s=SYNC_WAIT_S)  # passes list until the cache is synced
        if self.informed is not None:
            watch = self.informed
        elif watch is not None:  # a client that cannot inform: watches only wake the loop, passes list
            for kind in ("pods", "resourceclaims", "resourceslices"):
                threading.Thread(target=watch, args=(kind, stop, wake.set), name=f"watch-{kind}", daemon=True).start()
        while not stop.is_set():
            wake.clear()
            leader = self.leading()
            self.metrics.is_leader.set(int(leader))
            deferred = more = False
            if leader:
                try:
                    result = self.step()
                    deferred, more = result.deferred, result.more
                except NotLeader as exc:
                    log.warning("not sure to hold the Lease any more; pass stopped", extra={"error": str(exc)})
                except ApiError as exc:
                    log.error("API call failed; retrying", extra={"error": str(exc)})
                except DiagnosticError as exc:
                    log.error("the cluster's objects do not read cleanly", extra={"error": str(exc)})
                except Exception as exc:  # a bug: keep the other pods coming, say what happened
                    error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
                    log.error("pass failed; retrying", extra={"error": error})
                    log.debug("the failure's traceback", exc_info=exc)
            if more:
                continue
            quiet = watch is not None and leader and not deferred
            self._sleep(stop, wake, self._resync() if quiet else self.config.poll_interval_s, quiet)
        if self.elector is not None:
            self.elector.release()

    def _resync(self) -> float:
        """Never sleep past the next Lease renewal (a third of its duration)."""
        lease = self.elector.lease_duration_s / 3 if self.elector is not None else self.config.resync_s
        return min(self.config.resync_s, lease)

    def _sleep(self, stop: threading.Event, wake: threading.Event, seconds: float, wakeable: bool) -> None:
        deadline = self.clock() + seconds
        while not stop.is_set() and self.clock() < deadline:
            if wakeable and wake.is_set():
                stop.wait(self.config.poll_interval_s)  # a burst of events: one pass for all of it
                return
            (wake if wakeable else stop).wait(min(0.2, max(0.0, deadline - self.clock())))


def _uids(unit: Unit) -> frozenset[str]:
    return frozenset(str(p["metadata"].get("uid", "")) for p in unit.pods)
