"""Writing a plan: claims' ``status.allocation`` with optimistic concurrency, then the pods' gates.

Right before writing, every claim is read again. A unit is skipped (and solved again next round) when one of
its claims got allocated meanwhile, or when any claim allocated since the snapshot uses a device, or any device
of a pool (shared counters: MIG slices of one GPU), that the unit was given. Each claim gets the scheduler's
finalizer and our ``gpupolicy.dev/allocated-by`` annotation (a metadata update), then its allocation (a status
update); both carry the resourceVersion just read and are retried after a conflict that changed nothing that
matters. A unit whose writes fail half-way is rolled back (our allocations cleared), so a unit is allocated whole
or not at all. Before any gate is removed, the written claims are checked against a fresh list of every claim
(:func:`gpupolicy.plugin.controller.fence.clash`): a device held twice, or a pool changed meanwhile, and the unit
is released instead. Units hold disjoint devices, so several are written at once (``parallel`` threads): API
round trips, not the solver, bound a large batch.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from gpupolicy.plugin.controller.fence import Index, clash
from gpupolicy.plugin.controller.snapshot import (
    ALLOCATED_BY,
    FINALIZER,
    GATE,
    HOLD,
    ClaimRef,
    Snapshot,
    Unit,
    allocation,
    claim_names,
    ours,
    ref,
)
from gpupolicy.plugin.kube import Api, ApiError, Conflict, NotFound, Obj
from gpupolicy.plugin.timefmt import kube_time

RETRIES = 5
log = logging.getLogger(__name__)
DeviceKey = tuple[str, str, str]  # driver, pool, device


class Lost(Exception):
    """The claim was allocated by someone else, or a write kept failing: the unit is not committed."""


@dataclass
class Outcome:
    committed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # unit -> why
    claims_written: int = 0
    conflicts: int = 0
    failed: dict[str, Exception] = field(default_factory=dict)  # unit -> what an unexpected error said


def devices(alloc: Obj | None) -> set[DeviceKey]:
    results = ((alloc or {}).get("devices") or {}).get("results") or []
    return {(str(r["driver"]), str(r["pool"]), str(r["device"])) for r in results}


def _fresh_use(before: dict[ClaimRef, Obj], now: Iterable[Obj]) -> tuple[set[DeviceKey], set[tuple[str, str]]]:
    """Devices and pools of allocations that are new since the snapshot."""
    used: set[DeviceKey] = set()
    for claim in now:
        alloc = allocation(claim)
        old = before.get(ref(claim))
        if alloc is None or (old is not None and allocation(old) == alloc):
            continue
        used |= devices(alloc)
    return used, {(d, p) for d, p, _ in used}


def commit(
    api: Api,
    snapshot: Snapshot,
    units: dict[str, Unit],
    placed: dict[str, dict[ClaimRef, Obj]],
    identity: str,
    still_leader: Callable[[], bool] = lambda: True,
    parallel: int = 8,
) -> Outcome:
    """Write every placed unit's claims (units are independent: disjoint devices, so up to ``parallel`` at once),
    check them all against one fresh list of claims (:func:`fence.clash`), then remove the gates of those that
    pass. ``api`` is expected to refuse writes once this replica may not write any more (:class:`fence.Fenced`)."""
    out = Outcome()
    current = {ref(c): c for c in api.list("resourceclaims")}
    used, pools = _fresh_use(snapshot.claims, current.values())
    lock = threading.Lock()

    def guarded() -> bool:
        with lock:
            return still_leader()

    def write(key: str) -> tuple[str, str, list[ClaimRef], int, Exception | None]:
        allocations = placed[key]
        if not guarded():
            return key, "lost the leader lease", [], 0, None
        mine = set().union(*(devices(a) for a in allocations.values())) if allocations else set()
        taken = [c for c in allocations if c not in current or allocation(current[c]) is not None]
        if taken:
            return key, f"claim {taken[0][0]}/{taken[0][1]} changed since the snapshot", [], 0, None
        if mine & used or {(d, p) for d, p, _ in mine} & pools:
            return key, "a device pool it was given changed since the snapshot", [], 0, None
        tally = Outcome()
        written: list[ClaimRef] = []
        try:
            for claim_ref, alloc in allocations.items():
                _write_claim(api, current[claim_ref], alloc, identity, tally, consumers(units[key], claim_ref))
                written.append(claim_ref)
        except (Lost, ApiError) as exc:
            _rollback(api, written, uids(units[key]))
            return key, f"writing claims failed: {exc}", [], tally.conflicts, None
        except Exception as exc:  # one unit's bad object must not stop the others
            _rollback(api, written, uids(units[key]))
            return key, f"writing claims failed: {type(exc).__name__}: {exc}", [], tally.conflicts, exc
        return key, "", written, tally.conflicts, None

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        results = list(pool.map(write, placed))
    ready: dict[str, int] = {}
    for key, why, written, conflicts, failure in results:
        out.conflicts += conflicts
        if failure is not None:
            out.failed[key] = failure
        if why:
            out.skipped[key] = why
        else:
            ready[key] = len(written)
    if not ready:
        return out
    fresh = {ref(c): c for c in api.list("resourceclaims")}
    index = Index.of(fresh)
    planned = {c: a for k in placed for c, a in placed[k].items()}
    for key in list(ready):
        why = clash(placed[key], fresh, expected=placed[key], before=snapshot.claims, planned=planned, index=index)
        if why:
            _rollback(api, list(placed[key]), uids(units[key]))
            out.skipped[key] = f"not ungated: {why}"
            del ready[key]

    def let_go(key: str) -> tuple[str, str, Exception | None]:
        """Remove the unit's gates; when that fails, its claims stay allocated: the next pass finds it complete."""
        if not guarded():
            return key, "lost the leader lease before removing the gates", None
        try:
            for pod in units[key].pods:
                ungate(api, pod)
        except ApiError as exc:
            return key, f"removing the gates failed: {exc}", None
        except Exception as exc:  # one unit's bad object must not stop the others
            return key, f"removing the gates failed: {type(exc).__name__}: {exc}", exc
        return key, "", None

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for key, why, failure in pool.map(let_go, list(ready)):
            if failure is not None:
                out.failed[key] = failure
            if why:
                out.skipped[key] = why
            else:
                out.committed.append(key)
                out.claims_written += ready[key]
    return out


def consumers(unit: Unit, claim_ref: ClaimRef) -> list[Obj]:
    """The ``status.reservedFor`` entries of a claim: the unit's pods that use it (name and uid)."""
    out: list[Obj] = []
    for pod in unit.pods:
        meta = pod["metadata"]
        if ref(pod)[0] == claim_ref[0] and claim_ref[1] in claim_names(pod)[0] and meta.get("uid"):
            out.append({"resource": "pods", "name": str(meta["name"]), "uid": str(meta["uid"])})
    return out


def uids(unit: Unit) -> frozenset[str]:
    return frozenset(str(p["metadata"].get("uid", "")) for p in unit.pods)


def _write_claim(
    api: Api, claim: Obj, alloc: Obj, identity: str, out: Outcome, reserve: list[Obj] | None = None
) -> Obj:
    for _ in range(RETRIES):
        if allocation(claim) is not None:
            raise Lost(f"claim {ref(claim)[0]}/{ref(claim)[1]} was allocated by someone else")
        try:
            meta = claim["metadata"]
            if FINALIZER not in (meta.get("finalizers") or []) or not ours(claim):
                claim = copy.deepcopy(claim)
                claim["metadata"].setdefault("finalizers", [])
                if FINALIZER not in claim["metadata"]["finalizers"]:
                    claim["metadata"]["finalizers"].append(FINALIZER)
                claim["metadata"].setdefault("annotations", {})[ALLOCATED_BY] = identity
                claim = api.update("resourceclaims", claim)
            wanted = copy.deepcopy(claim)
            # Stamped as the scheduler stamps its allocations; a claim without it gets stamped at reservation time,
            # which the API server refuses for an allocation it did not make (the allocation is immutable once set).
            wanted.setdefault("status", {})["allocation"] = {**alloc, "allocationTimestamp": kube_time()}
            if reserve:
                # Reserved for its (still gated) pods in the same update: the scheduler's PreBind writes a claim
                # only when it is not reserved for the pod yet (dynamicresources.go, bindClaim), so this saves
                # one write per claim. The API server takes reservedFor with an allocation in one status update.
                wanted["status"]["reservedFor"] = reserve
            return api.update("resourceclaims", wanted, status=True)
        except Conflict:
            out.conflicts += 1
            claim = api.get("resourceclaims", *ref(claim))
    raise Lost(f"claim {ref(claim)[0]}/{ref(claim)[1]}: still conflicting after {RETRIES} tries")


def release(api: Api, claim_ref: ClaimRef, gated: Collection[str] = ()) -> None:
    """Clear an allocation this controller wrote, if nothing but the ``gated`` pods (uids: the unit's, which no
    scheduler can have bound) reserved the claim; its reservation for them goes with it."""
    for _ in range(RETRIES):
        try:
            claim = api.get("resourceclaims", *claim_ref)
        except NotFound:
            return
        status = claim.get("status") or {}
        reserved = status.get("reservedFor") or []
        if allocation(claim) is None or not ours(claim) or any(r.get("uid") not in gated for r in reserved):
            return
        status.pop("allocation", None)
        status.pop("reservedFor", None)
        claim["status"] = status
        try:
            api.update("resourceclaims", claim, status=True)
            return
        except Conflict:
            pass


def _rollback(api: Api, written: list[ClaimRef], gated: Collection[str]) -> None:
    """Release what was written; when that fails too (not the leader any more, the API server away), the claims
    stay allocated and the next pass of the leader finds the unit partial or complete."""
    for claim_ref in written:
        try:
            release(api, claim_ref, gated)
        except ApiError as exc:
            log.warning("rollback stopped", extra={"claim": f"{claim_ref[0]}/{claim_ref[1]}", "error": str(exc)})
            return


def update_pod(api: Api, pod: Obj, change: Callable[[Obj], bool], what: str) -> None:
    """Update ``pod`` with ``change`` (which edits a copy and says whether anything changed), read again and retried
    on conflicts; a pod gone is left alone."""
    for _ in range(RETRIES):
        wanted = copy.deepcopy(pod)
        if not change(wanted):
            return
        try:
            api.update("pods", wanted)
            return
        except NotFound:
            return
        except Conflict:
            pod = api.get("pods", *ref(pod))
    raise Conflict(f"pod {ref(pod)[0]}/{ref(pod)[1]}: {what} still conflicting after {RETRIES} tries")


def ungate(api: Api, pod: Obj) -> None:
    """Remove our scheduling gate (other gates stay) and a hold annotation with it, retrying on conflicts."""

    def change(obj: Obj) -> bool:
        gates = obj["spec"].get("schedulingGates") or []
        if not any(g.get("name") == GATE for g in gates):
            return False
        obj["spec"]["schedulingGates"] = [g for g in gates if g.get("name") != GATE]
        (obj["metadata"].get("annotations") or {}).pop(HOLD, None)
        return True

    update_pod(api, pod, change, "gate")
