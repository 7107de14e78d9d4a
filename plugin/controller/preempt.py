"""The controller's side of preemption and defragmentation, pass by pass: what a solve may disrupt, which units
hold devices, and acting on a plan that evicts (:mod:`disrupt`).

- ``--preemption`` lets the solve evict allocated claims of a strictly lower priority; ``--defragment`` lets it
  move allocated claims whose pods opted in (``gpupolicy.dev/movable: "true"``), at most
  ``--max-disruptions-per-hour`` moved claims in any sliding hour (counted by the leader, in memory).
- Holds (:mod:`holds`) are read from the gated pods every pass (whatever the flags say): a hold whose victims
  still hold its devices keeps its unit out of the batch; a released one lets it be solved, the devices still
  reserved for it; one past its deadline is dropped, released or not (the unit is solved again like any other).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gpupolicy.plugin.controller import report
from gpupolicy.plugin.controller.commit import DeviceKey
from gpupolicy.plugin.controller.disrupt import Executed, execute, victims
from gpupolicy.plugin.controller.fence import NotLeader
from gpupolicy.plugin.controller.holds import Hold, annotate, hold_of, released
from gpupolicy.plugin.controller.metrics import Metrics
from gpupolicy.plugin.controller.placer import Plan
from gpupolicy.plugin.controller.snapshot import HOLD, ClaimRef, Snapshot, State, Unit, pod_key, ref
from gpupolicy.plugin.kube import Api, ApiError, Obj
from gpupolicy.plugin.timefmt import kube_time
from gpupolicy.solver.problem import Disruption

log = logging.getLogger(__name__)
HOUR_S = 3600.0
WAITING = "WaitingForEvictions"  # the gpupolicy.dev/Placement condition's reason while a hold waits


@dataclass(frozen=True)
class Options:
    preemption: bool = False
    defragment: bool = False
    max_disruptions_per_hour: int = 10  # moved claims in a sliding hour; 0: none
    timeout_s: float = 120.0  # how long a hold waits for its victims

    @property
    def on(self) -> bool:
        return self.preemption or self.defragment


@dataclass
class Scan:
    waiting: dict[str, Hold] = field(default_factory=dict)  # units not solved this pass
    ripe: dict[str, Hold] = field(default_factory=dict)  # units solved this pass, their devices reserved
    dropped: list[str] = field(default_factory=list)  # holds past their deadline, removed

    @property
    def reserved(self) -> dict[str, tuple[DeviceKey, ...]]:
        return {k: h.devices for k, h in (self.waiting | self.ripe).items()}


class Preemption:
    def __init__(self, options: Options, metrics: Metrics, wall: Callable[[], float]) -> None:
        self.options, self.metrics, self.wall = options, metrics, wall
        self.moves: deque[float] = deque()  # when each moved claim's pods were evicted (wall clock)
        self.ripe: dict[str, Hold] = {}

    def disruption(self) -> Disruption:
        """What this pass's solve may disrupt; moves only while the hour's budget lasts."""
        now = self.wall()
        while self.moves and self.moves[0] <= now - HOUR_S:
            self.moves.popleft()
        left = max(0, self.options.max_disruptions_per_hour - len(self.moves))
        defragment = self.options.defragment and left > 0
        return Disruption(self.options.preemption, defragment, left if defragment else None)

    def scan(self, api: Api, all_units: Sequence[Unit], snapshot: Snapshot) -> Scan:
        """Sort the ready units' holds: waiting, ripe (released) or dropped (past the deadline, or a plan whose
        victims were never evicted: a leader stopped between writing the hold and evicting)."""
        out = Scan()
        now = self.wall()
        claims: Mapping[ClaimRef, Obj] = snapshot.claims
        alive = {(pod_key(p), str(p["metadata"].get("uid", ""))) for p in snapshot.holders
                 if not p["metadata"].get("deletionTimestamp")}  # fmt: skip
        for unit in all_units:
            hold = hold_of(unit) if unit.state == State.READY else None
            if hold is None:
                if unit.state == State.READY and any(
                    HOLD in (p["metadata"].get("annotations") or {}) for p in unit.pods
                ):
                    self._drop(api, unit, "the hold annotation does not read")
                    out.dropped.append(unit.key)
                continue
            free = released(hold, claims)
            if now >= hold.deadline:  # released or not: a hold never outlives its deadline
                why = "not placed by" if free else "its victims still hold the devices at"
                self._drop(api, unit, f"{why} the deadline {kube_time(hold.deadline)}")
                out.dropped.append(unit.key)
            elif not free and any(victim in alive for victim in hold.pods):
                self._drop(api, unit, "its victims were not evicted (a leader stopped mid-plan)")
                out.dropped.append(unit.key)
            elif free:
                out.ripe[unit.key] = hold
            else:
                out.waiting[unit.key] = hold
        self.ripe = out.ripe
        self.metrics.holds.set(len(out.waiting) + len(out.ripe))
        return out

    def _drop(self, api: Api, unit: Unit, why: str) -> None:
        log.warning("hold dropped; the unit is solved again", extra={"unit": unit.key, "reason": why})
        for pod in unit.pods:
            annotate(api, pod, None)

    def act(self, api: Api, snapshot: Snapshot, units: Mapping[str, Unit], plan: Plan) -> Executed:
        """Evict for the plan's units that need it; those units are taken out of ``plan.placed`` (not written
        now). Returns what was done; ``dropped`` units are solved again next pass."""
        chosen = victims(plan, snapshot, units)
        if not chosen:
            return Executed()
        waiting = list(dict.fromkeys(u for v in chosen for u in v.units))
        log.info("evicting for a plan", extra={"units": waiting, "victims": [list(v.pods) for v in chosen]})
        try:
            done = execute(api, snapshot, units, plan, chosen, now=self.wall(), timeout_s=self.options.timeout_s)
        finally:
            for key in waiting:
                plan.placed.pop(key, None)
        if done.dropped:
            self.metrics.evictions_refused.inc()
        now = self.wall()
        self.moves.extend([now] * done.moves)
        for name, reason in done.evicted:
            self.metrics.victims.labels(reason).inc()
            log.info("evicted", extra={"pod": name, "reason": reason})
        self.metrics.holds.inc(len(done.held))
        for key, hold in done.held.items():
            self.metrics.preemptions.inc()
            pods = ", ".join(name for name, _ in hold.pods)
            message = (f"evicted {len(hold.pods)} pod(s) to place this pod ({hold.reason}): {pods}; its devices are "
                       f"held until their claims are released, at most until {kube_time(hold.deadline)}")  # fmt: skip
            log.info("holding devices", extra={"unit": key, "victims": pods, "deadline": kube_time(hold.deadline)})
            for pod in units[key].pods:
                try:
                    report.set_condition(api, api.get("pods", *ref(pod)), "False", WAITING, message)
                    report.event(api, pod, "Normal", "Preempting", message)
                except NotLeader:
                    raise
                except ApiError as exc:
                    log.warning("could not report on a pod", extra={"pod": pod["metadata"]["name"], "error": str(exc)})
        return done

    def placed(self, key: str) -> None:
        """A unit written: if it held devices, the time from its first eviction."""
        hold = self.ripe.pop(key, None)
        if hold is not None:
            self.metrics.holds.dec()
            self.metrics.preemption_seconds.observe(max(0.0, self.wall() - hold.since))
            log.info("placed after evictions", extra={"unit": key, "seconds": round(self.wall() - hold.since, 1)})
