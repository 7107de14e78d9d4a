"""Carrying out a plan that evicts: preemption and defragmentation, as the kube-scheduler carries out its own
preemption, through the Eviction API so that PodDisruptionBudgets are honoured.

A plan's units that take what evicted claims free (their claims are in some ``Preempted.for_``/``Moved.for_``)
are not written now. Instead:

1. every victim pod of the plan is evicted with ``dryRun=All`` first; if the API server refuses one (429: its
   PodDisruptionBudget allows no disruption now), nothing is evicted and those units are solved again next pass
   (the budget's status now says 0, so the solver picks other victims, or none);
2. each preempting unit's hold (:mod:`holds`) is written on its pods, before any real eviction, so that a new
   leader keeps it;
3. the victims are evicted for real, one by one (a pod gone, or recreated under the same name, counts as done).
   If one is refused now, nothing more is evicted, the holds are removed and the units are solved again;
4. each evicted pod gets the ``DisruptionTarget`` condition (reason ``PreemptionByGpupolicy`` or
   ``DefragmentationByGpupolicy``, a message naming the preemptor) *after* its eviction, which writes its own
   (``EvictionByEvictionAPI``): ours is what the pod ends with. And a ``Preempted`` (``Moved``) Event naming
   the preemptor and the node, as the scheduler writes.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gpupolicy.plugin.controller import report
from gpupolicy.plugin.controller.commit import devices
from gpupolicy.plugin.controller.fence import NotLeader
from gpupolicy.plugin.controller.holds import Hold, annotate
from gpupolicy.plugin.controller.placer import Plan
from gpupolicy.plugin.controller.snapshot import ClaimRef, Snapshot, Unit, pod_key, ref
from gpupolicy.plugin.kube import Api, ApiError, Conflict, NotFound, Obj
from gpupolicy.plugin.timefmt import kube_time

log = logging.getLogger(__name__)
DISRUPTION_TARGET = "DisruptionTarget"
REASONS = {"preempted": "PreemptionByGpupolicy", "moved": "DefragmentationByGpupolicy"}
EVENTS = {"preempted": "Preempted", "moved": "Moved"}
RETRIES = 5


@dataclass(frozen=True)
class Victim:
    """An allocated claim the plan gives up, the pods to evict for it, and the units that wait for it."""

    claim: ClaimRef
    uid: str
    pods: tuple[str, ...]  # ns/name
    reason: str  # "preempted" or "moved"
    units: tuple[str, ...]  # the preempting units (keys), in plan order


@dataclass
class Executed:
    held: dict[str, Hold] = field(default_factory=dict)  # unit -> its hold (victims evicted)
    dropped: dict[str, str] = field(default_factory=dict)  # unit -> why its plan was dropped
    evicted: list[tuple[str, str]] = field(default_factory=list)  # (pod ns/name, reason)
    moves: int = 0  # moved claims whose pods were evicted


def victims(plan: Plan, snapshot: Snapshot, units: Mapping[str, Unit]) -> list[Victim]:
    """The claims the plan's solution evicts for one of its placed units (others are not acted on)."""
    solution = plan.solution
    if solution is None:
        return []
    owner = {f"{ns}/{name}": key for key in plan.placed for ns, name in units[key].claims}
    out = []
    entries = [(p.claim, p.pods, p.for_, "preempted") for p in solution.preempted.values()]
    entries += [(m.claim, m.pods, m.for_, "moved") for m in solution.moved.values()]
    for claim, pods, for_, reason in sorted(entries):
        takers = tuple(dict.fromkeys(owner[c] for c in for_ if c in owner))
        if not takers:
            continue
        namespace, _, name = str(claim).partition("/")
        obj = snapshot.claims.get((namespace, name))
        uid = str(obj["metadata"].get("uid", "")) if obj is not None else ""
        out.append(Victim((namespace, name), uid, tuple(pods), reason, takers))
    return out


def execute(
    api: Api,
    snapshot: Snapshot,
    units: Mapping[str, Unit],
    plan: Plan,
    chosen: Sequence[Victim],
    *,
    now: float,
    timeout_s: float,
) -> Executed:
    """Dry-run every eviction, write the holds, evict, mark the victims (see the module's text). :class:`NotLeader`
    stops it where it is (the holds written tell the next leader what was started)."""
    out = Executed()
    waiting = list(dict.fromkeys(u for v in chosen for u in v.units))
    bound = {pod_key(p): p for p in snapshot.holders}
    pods = {name: bound.get(name) for v in chosen for name in v.pods}
    for name, pod in pods.items():
        why = _evict(api, name, pod, dry_run=True)
        if why:
            log.info("eviction refused (dry run); solved again next pass", extra={"pod": name, "reason": why})
            return _drop(out, waiting, f"the eviction of pod {name} was refused: {why}")
    for key in waiting:
        mine = [v for v in chosen if key in v.units]
        reason = "preempted" if any(v.reason == "preempted" for v in mine) else "moved"
        held = set().union(*(devices(a) for a in plan.placed[key].values()))
        out.held[key] = Hold(
            reason,
            tuple(dict.fromkeys((n, _uid(pods.get(n))) for v in mine for n in v.pods)),
            tuple(dict.fromkeys((f"{v.claim[0]}/{v.claim[1]}", v.uid) for v in mine)),
            tuple(sorted(held)),
            now,
            now + timeout_s,
        )
    try:
        for key, hold in out.held.items():
            for pod in units[key].pods:
                annotate(api, pod, hold.to_annotation())
    except NotLeader:
        raise
    except ApiError as exc:
        _unhold(api, units, out.held)
        return _drop(out, waiting, f"writing the hold failed: {exc}")
    for victim in chosen:
        for name in victim.pods:
            if any(name == done for done, _ in out.evicted):
                continue
            why = _evict(api, name, pods.get(name), dry_run=False)
            if why:
                log.warning("eviction refused; nothing more evicted, solved again next pass",
                            extra={"pod": name, "reason": why})  # fmt: skip
                _unhold(api, units, out.held)
                return _drop(out, waiting, f"the eviction of pod {name} was refused: {why}")
            out.evicted.append((name, victim.reason))
            preemptor = units[victim.units[0]].pods[0]
            _mark(api, name, pods.get(name), victim.reason, preemptor)
        out.moves += victim.reason == "moved"
    return out


def _drop(out: Executed, waiting: Sequence[str], why: str) -> Executed:
    out.held.clear()
    out.dropped = dict.fromkeys(waiting, why)
    return out


def _unhold(api: Api, units: Mapping[str, Unit], held: Mapping[str, Hold]) -> None:
    """Remove the holds just written (best effort: a hold left behind is dropped at its deadline)."""
    for key in held:
        for pod in units[key].pods:
            try:
                annotate(api, api.get("pods", *ref(pod)), None)
            except NotLeader:
                raise
            except ApiError as exc:
                log.warning("could not remove a hold", extra={"unit": key, "error": str(exc)})


def _uid(pod: Obj | None) -> str:
    return str(pod["metadata"].get("uid", "")) if pod is not None else ""


def _evict(api: Api, name: str, pod: Obj | None, *, dry_run: bool) -> str:
    """ "" when the pod is evicted (or gone: not found, or another pod under its name now), else why not."""
    namespace, _, pod_name = name.partition("/")
    try:
        api.evict(namespace, pod_name, uid=_uid(pod), dry_run=dry_run)
    except NotFound:
        return ""
    except Conflict as exc:  # the uid precondition (another pod under the name now), or the budget kept changing
        return "" if _gone(api, namespace, pod_name, _uid(pod)) else str(exc)
    except NotLeader:
        raise
    except ApiError as exc:
        return str(exc)
    return ""


def _gone(api: Api, namespace: str, name: str, uid: str) -> bool:
    """The pod we meant is not there any more, or is being deleted."""
    try:
        current = api.get("pods", namespace, name)
    except NotFound:
        return True
    meta = current["metadata"]
    return bool(uid and meta.get("uid") != uid) or bool(meta.get("deletionTimestamp"))


def _mark(api: Api, name: str, pod: Obj | None, reason: str, preemptor: Obj) -> None:
    """The victim's ``DisruptionTarget`` condition (replacing the Eviction API's) while it terminates, and its Event
    (also when the pod is gone already: a short grace period). Best effort: a failure is logged."""
    namespace, _, pod_name = name.partition("/")
    who = pod_key(preemptor)
    verb = "preempting to accommodate a higher priority" if reason == "preempted" else "moving to make room for a"
    current: Obj | None = None
    try:
        current = api.get("pods", namespace, pod_name)
        if pod is not None and current["metadata"].get("uid") != pod["metadata"].get("uid"):
            current = None  # recreated meanwhile: not the pod we evicted
        else:
            set_target(api, current, REASONS[reason], f"{report.COMPONENT}: {verb} pod {who}")
    except NotFound:
        current = None
    except NotLeader:
        raise
    except ApiError as exc:
        log.warning("could not mark an evicted pod", extra={"pod": name, "error": str(exc)})
    about = current or pod
    if about is None:
        return
    node = (about.get("spec") or {}).get("nodeName") or "?"
    try:
        report.event(api, about, "Normal", EVENTS[reason], f"{EVENTS[reason]} by pod {who} on node {node}")
    except NotLeader:
        raise
    except ApiError as exc:
        log.warning("could not report on an evicted pod", extra={"pod": name, "error": str(exc)})


def set_target(api: Api, pod: Obj, reason: str, message: str, retries: int = RETRIES) -> None:
    """The ``DisruptionTarget`` condition, status True, replacing any other (the Eviction API's)."""
    for _ in range(retries):
        pod = copy.deepcopy(pod)
        status = pod.setdefault("status", {})
        old = next((c for c in status.get("conditions") or [] if c.get("type") == DISRUPTION_TARGET), None)
        if old is not None and (old.get("status"), old.get("reason"), old.get("message")) == ("True", reason, message):
            return
        others = [c for c in status.get("conditions") or [] if c.get("type") != DISRUPTION_TARGET]
        since = old["lastTransitionTime"] if old and old.get("status") == "True" and "lastTransitionTime" in old \
            else kube_time()  # fmt: skip
        status["conditions"] = [*others, {"type": DISRUPTION_TARGET, "status": "True", "reason": reason,
                                          "message": message, "lastTransitionTime": since}]  # fmt: skip
        try:
            api.update("pods", pod, status=True)
            return
        except Conflict:
            pod = api.get("pods", *ref(pod))
