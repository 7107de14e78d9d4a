"""What the controller knows of the cluster between passes: a cache kept current from watches (an informer).

Each kind a pass reads (pods, ResourceClaims, ResourceSlices, DeviceClasses, Nodes, and PodDisruptionBudgets with
preemption or defragmentation) is listed once, then watched from the list's resourceVersion
(:meth:`~gpupolicy.plugin.kube.client.Client.inform`: bookmarks, a new list on 410 Gone). A pass then builds its
:class:`~gpupolicy.plugin.controller.snapshot.Snapshot` from the cache: no list, and the work of a pass follows
what changed, not the cluster's size:

- the gated pods and the bound pods that hold claims are kept as indexes, updated per event;
- the inventory's fingerprint (what an unplaced unit waits for to change, :mod:`fingerprint`) is a sum of one
  hash per part, updated per event (a part leaves, another comes), never recomputed over the cluster.

The cache may lag behind the API server (an event on its way). Two things keep that harmless: what this replica
writes is put in the cache at once (:meth:`Cache.assume`, when the answer's resourceVersion is newer, as the
scheduler's assume cache does), and every decision that a lag could make wrong reads the API server instead:
the fresh list of claims right before writing, and the one before any gate is removed (``commit.py``,
``fence.clash``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from typing import Protocol

from gpupolicy.plugin.controller import fingerprint as fp
from gpupolicy.plugin.controller.holders import BUDGETS, holds
from gpupolicy.plugin.controller.snapshot import Snapshot, gated, ref
from gpupolicy.plugin.kube import Obj

KINDS = ("pods", "resourceclaims", "resourceslices", "deviceclasses", "nodes")
SYNC_TIMEOUT_S = 120.0
Key = tuple[str, str]  # namespace ("" when cluster-scoped), name


class Informs(Protocol):
    """What the cache needs of an API client: :meth:`~gpupolicy.plugin.kube.client.Client.inform`."""

    def inform(
        self,
        kind: str,
        stop: threading.Event,
        replace: Callable[[list[Obj], str], None],
        event: Callable[[str, Obj], None],
    ) -> None: ...


def kinds(disruption: bool) -> tuple[str, ...]:
    return (*KINDS, BUDGETS) if disruption else KINDS


def _version(obj: Obj) -> int | None:
    value = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(value) if value.isdigit() else None


def _older(new: Obj, old: Obj) -> bool:
    """Whether ``new`` is an older state than ``old`` (resourceVersions read as numbers, as the scheduler's assume
    cache reads them; when either is not a number, the newcomer wins)."""
    a, b = _version(new), _version(old)
    return a is not None and b is not None and a < b


class Cache:
    """The objects of ``kinds``, by kind and (namespace, name), as the last list and the events since left them.
    ``changed`` is called after each list and event (it wakes the loop)."""

    def __init__(self, kinds: Iterable[str] = KINDS, changed: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[Key, Obj]] = {k: {} for k in kinds}
        self._synced: set[str] = set()
        self._gated: dict[Key, Obj] = {}
        self._holders: dict[Key, Obj] = {}
        self._parts: dict[tuple[str, Key], tuple[int, ...]] = {}  # the digests each object adds to a sum
        self._sum = {False: 0, True: 0}  # inventory; who holds what (with disruption)
        self.changed = changed
        self.lists: Counter[str] = Counter()  # lists read, by kind (the first and each one after a 410)
        self.events = 0

    # -- fed by the informers

    def replace(self, kind: str, items: list[Obj], version: str = "") -> None:
        """A new list: everything of ``kind`` is what it says (except objects this replica wrote since, which are
        newer: :meth:`assume`)."""
        with self._lock:
            listed = {_key(o): o for o in items}
            for key in [k for k in self._objects[kind] if k not in listed]:
                self._drop(kind, key)
            for obj in items:
                self._put(kind, obj)
            self._synced.add(kind)
            self.lists[kind] += 1
        self.changed()

    def event(self, kind: str, type_: str, obj: Obj) -> None:
        """One watch event: ``ADDED``, ``MODIFIED`` or ``DELETED``."""
        with self._lock:
            self.events += 1
            if type_ == "DELETED":
                self._drop(kind, _key(obj))
            else:
                self._put(kind, obj)
        self.changed()

    def assume(self, kind: str, obj: Obj) -> None:
        """What a write of this replica answered: kept unless the cache already holds a newer state."""
        if kind in self._objects and obj.get("metadata"):
            with self._lock:
                self._put(kind, obj)

    def synced(self, wanted: Collection[str] | None = None) -> bool:
        with self._lock:
            return set(wanted if wanted is not None else self._objects) <= self._synced

    # -- read by a pass

    def snapshot(self, namespaces: Collection[str] = (), *, disruption: bool = False) -> Snapshot:
        """A :class:`Snapshot` as :meth:`Snapshot.read` would list it, from the cache (references to the cached
        objects: they are never changed in place, every write path copies first)."""
        with self._lock:
            pods = [p for k, p in self._gated.items() if not namespaces or k[0] in namespaces]
            out = Snapshot(
                pods,
                dict(sorted(self._objects.get("resourceclaims", {}).items())),  # the order a list has
                self._sorted("resourceslices"),
                self._sorted("deviceclasses"),
                self._sorted("nodes"),
            )
            out.base = self._sum[False]
            if disruption:
                out.holders = list(self._holders.values())
                out.budgets = self._sorted(BUDGETS)
                out.base = (out.base + self._sum[True]) % fp.MOD
            return out

    def count(self, kind: str) -> int:
        with self._lock:
            return len(self._objects.get(kind, {}))

    # -- inside the lock

    def _sorted(self, kind: str) -> list[Obj]:
        return [o for _, o in sorted(self._objects.get(kind, {}).items())]

    def _put(self, kind: str, obj: Obj) -> None:
        key = _key(obj)
        old = self._objects[kind].get(key)
        if old is not None and _older(obj, old):
            return
        self._objects[kind][key] = obj
        if kind == "pods":
            _index(self._gated, key, obj if gated(obj) else None)
            _index(self._holders, key, obj if holds(obj) else None)
        self._account(kind, key, obj)

    def _drop(self, kind: str, key: Key) -> None:
        if self._objects[kind].pop(key, None) is None:
            return
        if kind == "pods":
            self._gated.pop(key, None)
            self._holders.pop(key, None)
        self._account(kind, key, None)

    def _account(self, kind: str, key: Key, obj: Obj | None) -> None:
        """Move the fingerprint's sums from the object's old parts to its new ones."""
        disruption = kind in ("pods", BUDGETS)
        before = self._parts.pop((kind, key), ())
        after = tuple(fp.digest(p) for p in fp.parts(kind, obj)) if obj is not None else ()
        if after:
            self._parts[(kind, key)] = after
        self._sum[disruption] = (self._sum[disruption] - sum(before) + sum(after)) % fp.MOD


def _key(obj: Obj) -> Key:
    namespace, name = ref(obj)
    return (namespace if (obj.get("metadata") or {}).get("namespace") else ""), name


def _index(index: dict[Key, Obj], key: Key, obj: Obj | None) -> None:
    if obj is None:
        index.pop(key, None)
    else:
        index[key] = obj


def start(api: Informs, cache: Cache, stop: threading.Event, timeout_s: float = SYNC_TIMEOUT_S) -> bool:
    """One informer thread per kind of ``cache``, until ``stop``; True once every kind was listed (False when
    ``timeout_s`` passed first, or ``stop``: the caller lists until then)."""
    for kind in list(cache._objects):
        threading.Thread(
            target=api.inform,
            args=(kind, stop, lambda items, version, k=kind: cache.replace(k, items, version),
                  lambda type_, obj, k=kind: cache.event(k, type_, obj)),
            name=f"inform-{kind}",
            daemon=True,
        ).start()  # fmt: skip
    waited = 0.0
    while not cache.synced() and not stop.is_set() and waited < timeout_s:
        stop.wait(0.01)
        waited += 0.01
    return cache.synced()
