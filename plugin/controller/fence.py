"""Fencing: what a replica checks before it writes, and before it lets a pod go.

The Lease cannot stop a write that is already on its way: a leader whose request hangs in the API server can
still have it applied after another replica took over. client-go's leader election says as much (it gives no
fencing). The controller narrows the window, then makes what is left harmless:

1. Every write goes through :class:`Fenced`. Right before it is sent, the replica checks that it renewed the
   Lease within the renew deadline, by its own monotonic clock (:meth:`LeaderElector.is_leader`). Writes use a
   client whose timeout, also sent to the API server as ``?timeout=``, ends every write before the Lease can
   expire for another replica (:attr:`LeaderElector.write_timeout_s`).
2. Before a gate is removed, the unit's claims are checked against a fresh list of every claim (:func:`clash`):
   each must hold what was written, no other claim may hold one of its devices, and no allocation that is new
   since the unit was solved may sit in one of its pools (shared counters: MIG slices of one GPU). A unit that
   fails the check is released and solved again; its pods stay gated.

A stale replica's late write can therefore leave a claim allocated, never a pod running: its unit stays gated,
and the next pass of the leader finds it (complete or partial) and checks it again before anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from gpupolicy.plugin.controller.snapshot import ClaimRef, allocation
from gpupolicy.plugin.kube import Api, ApiError, Obj

DeviceKey = tuple[str, str, str]  # driver, pool, device


class NotLeader(ApiError):
    """A write refused before it was sent: this replica is not sure to hold the Lease any more."""

    code = "not_leader"


class Fenced:
    """``reads`` for lists and gets; ``writes`` for every create, update and eviction, each sent only while
    ``may_write()`` says so (else :class:`NotLeader`)."""

    def __init__(
        self,
        reads: Api,
        writes: Api,
        may_write: Callable[[], bool],
        seen: Callable[[str, Obj], None] = lambda kind, obj: None,
    ) -> None:
        """``seen``: told each object an update answered (the controller's cache keeps it, :meth:`Cache.assume`)."""
        self.reads, self.writes, self.may_write, self.seen = reads, writes, may_write, seen

    def list(self, kind: str) -> list[Obj]:
        return self.reads.list(kind)

    def get(self, kind: str, namespace: str | None, name: str) -> Obj:
        return self.reads.get(kind, namespace, name)

    def create(self, kind: str, obj: Obj) -> Obj:
        self._check(kind, obj)
        return self.writes.create(kind, obj)

    def update(self, kind: str, obj: Obj, *, status: bool = False) -> Obj:
        self._check(kind, obj)
        out = self.writes.update(kind, obj, status=status)
        self.seen(kind, out)
        return out

    def evict(self, namespace: str, name: str, *, uid: str = "", dry_run: bool = False) -> None:
        """Every eviction, the dry runs too (they decrement nothing, but a replica that may not write does not ask)."""
        self._check("pods/eviction", {"metadata": {"namespace": namespace, "name": name}})
        self.writes.evict(namespace, name, uid=uid, dry_run=dry_run)

    def _check(self, kind: str, obj: Obj) -> None:
        if not self.may_write():
            meta = obj.get("metadata") or {}
            name = f"{meta.get('namespace', '')}/{meta.get('name', '')}".lstrip("/")
            raise NotLeader(f"not sure to hold the Lease any more: {kind} {name} not written")


def held(alloc: Obj | None) -> dict[DeviceKey, bool]:
    """The devices an allocation holds, each with whether it is shared (a ``shareID``: a device that allows several
    allocations); admin access holds nothing."""
    results = ((alloc or {}).get("devices") or {}).get("results") or []
    return {
        (str(r.get("driver")), str(r.get("pool")), str(r.get("device"))): bool(r.get("shareID"))
        for r in results
        if not r.get("adminAccess")
    }


@dataclass
class Index:
    """Every allocated claim of one fresh list, by device and by pool: :func:`clash` looks up the claims near a
    unit instead of walking the whole list for each unit (a batch of thousands of units against thousands of
    claims)."""

    fresh: Mapping[ClaimRef, Obj]
    held: dict[ClaimRef, dict[DeviceKey, bool]] = field(default_factory=dict)
    by_device: dict[DeviceKey, list[ClaimRef]] = field(default_factory=dict)
    by_pool: dict[tuple[str, str], list[ClaimRef]] = field(default_factory=dict)

    @classmethod
    def of(cls, fresh: Mapping[ClaimRef, Obj]) -> Index:
        out = cls(fresh)
        for claim_ref, claim in fresh.items():
            alloc = allocation(claim)
            if alloc is None:
                continue
            out.held[claim_ref] = theirs = held(alloc)
            for device in theirs:
                out.by_device.setdefault(device, []).append(claim_ref)
            for pool in {(d, p) for d, p, _ in theirs}:
                out.by_pool.setdefault(pool, []).append(claim_ref)
        return out


def clash(
    unit: Collection[ClaimRef],
    fresh: Mapping[ClaimRef, Obj],
    *,
    expected: Mapping[ClaimRef, Obj] | None = None,
    before: Mapping[ClaimRef, Obj] | None = None,
    planned: Mapping[ClaimRef, Obj] | None = None,
    index: Index | None = None,
) -> str:
    """Why the unit's gates must not be removed ("" when they may), judged on ``fresh``, every claim as just listed
    (``index``: :meth:`Index.of` of it, built once for many units):

    - each of the unit's claims is allocated, with the devices of ``expected`` when given (what we wrote);
    - no other claim holds one of its devices (unless both share a device that allows it);
    - with ``before`` (the claims the unit was solved against): no allocation new since then uses a device of one
      of its pools, except the ones ``planned`` in the same batch (devices the solver kept apart).
    """
    index = index if index is not None else Index.of(fresh)
    mine: dict[DeviceKey, bool] = {}
    for claim_ref in unit:
        current = fresh.get(claim_ref)
        alloc = allocation(current) if current is not None else None
        if alloc is None:
            return f"claim {claim_ref[0]}/{claim_ref[1]} is not allocated any more"
        if expected is not None and set(held(alloc)) != set(held(expected.get(claim_ref))):
            return f"claim {claim_ref[0]}/{claim_ref[1]} holds other devices than were written"
        mine |= held(alloc)
    others = sorted({o for d in mine for o in index.by_device.get(d, ()) if o not in unit})
    for other_ref in others:
        theirs = index.held[other_ref]
        both = [d for d in mine.keys() & theirs.keys() if not (mine[d] and theirs[d])]
        if both:
            return f"device {'/'.join(sorted(both)[0])} is also allocated to claim {other_ref[0]}/{other_ref[1]}"
    if before is None:
        return ""
    pools = {(driver, pool) for driver, pool, _ in mine}
    for other_ref in sorted({o for p in pools for o in index.by_pool.get(p, ()) if o not in unit}):
        theirs, alloc = index.held[other_ref], allocation(fresh[other_ref])
        old = before.get(other_ref)
        if (old is not None and allocation(old) == alloc) or _as_planned(theirs, (planned or {}).get(other_ref)):
            continue
        near = sorted({(d, p) for d, p, _ in theirs} & pools)
        return f"claim {other_ref[0]}/{other_ref[1]} was allocated meanwhile in pool {'/'.join(near[0])}"
    return ""


def _as_planned(theirs: dict[DeviceKey, bool], plan: Obj | None) -> bool:
    return plan is not None and set(theirs) == set(held(plan))
