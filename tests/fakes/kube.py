"""An in-memory API server for the kubelet plugin's calls: claims, nodes and slices with resourceVersions and
conflicts, and watches of nodes and slices. It backs the unit tests and the HTTP stand-in of
``tests.fakes.kube_stub``."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import threading
import uuid
from collections.abc import Callable
from typing import TypeVar

from gpupolicy.plugin.kube import Obj
from gpupolicy.plugin.kube.errors import error

Change = tuple[str, str, Obj]
"""A change: the resource (``nodes``, ``resourceslices``), the event type (``ADDED``, ``MODIFIED``, ``DELETED``)
and the object as it is after it (as it was, with the deletion's resourceVersion, when deleted)."""
Subscriber = Callable[[str, str, Obj], None]
T = TypeVar("T")


class FakeKube:
    """An in-memory API server: claims, nodes and slices with resourceVersions and conflicts.

    ``reachable = False`` makes every call fail as a network error would. Changes of nodes and slices made through
    the methods (``put_node``, ``delete_node``, the slice calls) reach the watches and are kept in ``changes``;
    changes made to ``nodes`` or ``slices`` directly reach nobody. ``watchable = False`` makes the watches started
    from then on fail as the real one does when RBAC denies it (it tries on until stopped, calling nobody).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()  # a subscriber may call back from the thread that made the change
        self._rv = itertools.count(1)
        self.version = 0
        """The newest resourceVersion given out."""
        self.claims: dict[tuple[str, str], Obj] = {}
        self.nodes: dict[str, Obj] = {}
        self.slices: dict[str, Obj] = {}
        self.events: list[Obj] = []
        self.changes: list[Change] = []
        self._subscribers: list[Subscriber] = []
        self.reachable = True
        self.watchable = True
        self.calls: list[str] = []

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if not self.reachable:
            raise error("unreachable", "connection refused")

    def _stamp(self, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        self.version = next(self._rv)
        meta["resourceVersion"] = str(self.version)
        return obj

    def _changed(self, resource: str, type_: str, obj: Obj) -> None:
        """Record a change (under the lock) and tell the subscribers."""
        change = (resource, type_, copy.deepcopy(obj))
        self.changes.append(change)
        for subscriber in list(self._subscribers):
            subscriber(*change)

    def subscribe(self, subscriber: Subscriber, since: int | None = None) -> Callable[[], None]:
        """Call ``subscriber`` on every change of a node or slice from now on (under the lock: it must not block),
        after the changes since resourceVersion ``since``; returns what unsubscribes it."""
        with self._lock:
            if since is not None:
                for change in self.changes:
                    if int(change[2]["metadata"]["resourceVersion"]) > since:
                        subscriber(*change)
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def _watch(
        self, call: str, resource: str, match: Callable[[Obj], bool], stop: threading.Event, changed: Callable[[], None]
    ) -> None:
        with self._lock:
            self.calls.append(call)
            if not self.watchable:
                unsubscribe = None
            else:
                unsubscribe = self.subscribe(lambda res, _, obj: changed() if res == resource and match(obj) else None)
        if unsubscribe is None:
            stop.wait()
            return
        try:
            changed()  # as the real one after its list
            stop.wait()
        finally:
            unsubscribe()

    def watch_slices(self, driver: str, node: str, stop: threading.Event, changed: Callable[[], None]) -> None:
        self._watch(
            "watch_slices",
            "resourceslices",
            lambda obj: obj["spec"].get("driver") == driver and obj["spec"].get("nodeName") == node,
            stop,
            changed,
        )

    def watch_node(self, name: str, stop: threading.Event, changed: Callable[[], None]) -> None:
        self._watch("watch_node", "nodes", lambda obj: obj["metadata"]["name"] == name, stop, changed)

    # test set-up helpers
    def put_claim(self, claim: Obj) -> Obj:
        with self._lock:
            meta = claim["metadata"]
            self.claims[(meta["namespace"], meta["name"])] = self._stamp(copy.deepcopy(claim))
            return copy.deepcopy(self.claims[(meta["namespace"], meta["name"])])

    def put_node(self, name: str) -> Obj:
        """Create the Node ``name`` (with a new UID), or replace it when it exists (a re-created Node)."""
        with self._lock:
            existed = name in self.nodes
            self.nodes[name] = self._stamp({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
            self._changed("nodes", "MODIFIED" if existed else "ADDED", self.nodes[name])
            return copy.deepcopy(self.nodes[name])

    def delete_node(self, name: str) -> None:
        with self._lock:
            node = self.nodes.pop(name)
            self._changed("nodes", "DELETED", self._stamp(node))

    def get_claim(self, namespace: str, name: str) -> Obj:
        with self._lock:
            self._check("get_claim")
            try:
                return copy.deepcopy(self.claims[(namespace, name)])
            except KeyError:
                raise error("not_found", f'resourceclaims "{name}" not found in {namespace}') from None

    def claim_json(self, namespace: str, name: str) -> bytes:
        """``get_claim`` as the API server sends it (JSON), without the copy."""
        with self._lock:
            self._check("get_claim")
            try:
                return json.dumps(self.claims[(namespace, name)]).encode()
            except KeyError:
                raise error("not_found", f'resourceclaims "{name}" not found in {namespace}') from None

    async def get_claim_async(self, namespace: str, name: str) -> Obj:
        await asyncio.sleep(0)  # a network read would let other coroutines run meanwhile
        return self.get_claim(namespace, name)

    async def aclose(self) -> None:
        return None

    def list_claims(self) -> list[Obj]:
        with self._lock:
            self._check("list_claims")
            return [copy.deepcopy(c) for _, c in sorted(self.claims.items())]

    def get_node(self, name: str) -> Obj:
        with self._lock:
            self._check("get_node")
            try:
                return copy.deepcopy(self.nodes[name])
            except KeyError:
                raise error("not_found", f'nodes "{name}" not found') from None

    def at_version(self, read: Callable[[], T]) -> tuple[T, str]:
        """What ``read`` returns and the resourceVersion it is as of (a list's ``metadata.resourceVersion``)."""
        with self._lock:
            return read(), str(self.version)

    def list_nodes(self, name: str | None) -> list[Obj]:
        """Nodes named ``name``; None matches any (a list without field selector)."""
        with self._lock:
            self._check("list_nodes")
            return [copy.deepcopy(n) for key, n in sorted(self.nodes.items()) if name in (None, key)]

    def list_slices(self, driver: str | None, node: str | None) -> list[Obj]:
        """Slices of ``driver`` on ``node``; None matches any (a list without field selector)."""
        with self._lock:
            self._check("list_slices")
            return [
                copy.deepcopy(s)
                for _, s in sorted(self.slices.items())
                if driver in (None, s["spec"].get("driver")) and node in (None, s["spec"].get("nodeName"))
            ]

    def create_slice(self, obj: Obj) -> Obj:
        with self._lock:
            self._check("create_slice")
            name = obj["metadata"]["name"]
            if name in self.slices:
                raise error("conflict", f'resourceslices "{name}" already exists')
            body = copy.deepcopy(obj)
            body["metadata"].pop("resourceVersion", None)
            self.slices[name] = self._stamp(body)
            self._changed("resourceslices", "ADDED", self.slices[name])
            return copy.deepcopy(self.slices[name])

    def replace_slice(self, obj: Obj) -> Obj:
        with self._lock:
            self._check("replace_slice")
            name = obj["metadata"]["name"]
            current = self.slices.get(name)
            if current is None:
                raise error("not_found", f'resourceslices "{name}" not found')
            if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                raise error("conflict", f'resourceslices "{name}": the object has been modified')
            body = copy.deepcopy(obj)
            body["metadata"]["uid"] = current["metadata"]["uid"]
            self.slices[name] = self._stamp(body)
            self._changed("resourceslices", "MODIFIED", self.slices[name])
            return copy.deepcopy(self.slices[name])

    def delete_slice(self, name: str) -> None:
        with self._lock:
            self._check("delete_slice")
            gone = self.slices.pop(name, None)
            if gone is None:
                raise error("not_found", f'resourceslices "{name}" not found')
            self._changed("resourceslices", "DELETED", self._stamp(gone))

    def create_event(self, obj: Obj) -> None:
        with self._lock:
            self._check("create_event")
            self.events.append(self._stamp(copy.deepcopy(obj)))
