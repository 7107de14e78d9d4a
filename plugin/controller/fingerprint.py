"""What an unplaced unit waits for: the inventory's fingerprint.

A unit that could not be placed is solved again only when something it could use changed: ResourceSlices,
DeviceClasses, which claim holds which device, and, with preemption or defragmentation, who holds claims (bound
pods, and whether they are being deleted) and what the PodDisruptionBudgets allow. Each of these is a *part* (a
string); the fingerprint is the sum of the parts' SHA-256 digests modulo 2^256, so that a cache can keep it current
per event (take an object's old parts out, put its new ones in, :mod:`cache`) instead of hashing the whole cluster
on every pass. :func:`of` computes the same value from a listed snapshot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from gpupolicy.plugin.controller.holders import BUDGETS, holds
from gpupolicy.plugin.controller.snapshot import Snapshot, allocation, ref
from gpupolicy.plugin.kube import Obj

MOD = 2**256


def digest(part: str) -> int:
    return int.from_bytes(hashlib.sha256(part.encode()).digest(), "big")


def parts(kind: str, obj: Obj) -> set[str]:
    """The parts one object adds (none for what no retry waits for)."""
    meta = obj.get("metadata") or {}
    if kind == "resourceslices":
        return {f"slice:{meta.get('name')}@{meta.get('resourceVersion')}"}
    if kind == "deviceclasses":
        return {f"class:{meta.get('name')}@{meta.get('resourceVersion')}"}
    if kind == "resourceclaims":
        ns, name = ref(obj)
        results = ((allocation(obj) or {}).get("devices") or {}).get("results") or []
        # .get: an object that does not read must not stop the cache (its claim fails in the pass, not here)
        return {f"alloc:{ns}/{name}:{r.get('driver')}/{r.get('pool')}/{r.get('device')}" for r in results}
    if kind == "pods":
        return {f"bound:{meta.get('uid')}:{bool(meta.get('deletionTimestamp'))}"} if holds(obj) else set()
    if kind == BUDGETS:
        ns, name = ref(obj)
        return {f"pdb:{ns}/{name}:{(obj.get('status') or {}).get('disruptionsAllowed')}"}
    return set()


def total(found: Iterable[str]) -> int:
    return sum(digest(p) for p in set(found)) % MOD


def base(snapshot: Snapshot) -> int:
    """The sum of every part of a snapshot (what a cache-built snapshot carries already)."""
    if snapshot.base is not None:
        return snapshot.base
    found: set[str] = set()
    for kind, objs in (
        ("resourceslices", snapshot.slices),
        ("deviceclasses", snapshot.classes),
        ("resourceclaims", snapshot.claims.values()),
        ("pods", snapshot.holders),
        (BUDGETS, snapshot.budgets),
    ):
        for obj in objs:
            found |= parts(kind, obj)
    snapshot.base = total(found)
    return snapshot.base


def of(snapshot: Snapshot, extra: Iterable[str] = ()) -> str:
    """The fingerprint of ``snapshot`` with ``extra`` parts (allocations just written, what may be disrupted)."""
    return format((base(snapshot) + total(extra)) % MOD, "064x")
