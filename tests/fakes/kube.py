"""An in-memory API server for the kubelet plugin's calls: claims, nodes and slices with resourceVersions and
conflicts. It backs the unit tests and the HTTP stand-in of ``tests.fakes.kube_stub``."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import threading
import uuid

from gpupolicy.plugin.kube import Obj
from gpupolicy.plugin.kube.errors import error


class FakeKube:
    """An in-memory API server: claims, nodes and slices with resourceVersions and conflicts.

    ``reachable = False`` makes every call fail as a network error would.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rv = itertools.count(1)
        self.claims: dict[tuple[str, str], Obj] = {}
        self.nodes: dict[str, Obj] = {}
        self.slices: dict[str, Obj] = {}
        self.events: list[Obj] = []
        self.reachable = True
        self.calls: list[str] = []

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if not self.reachable:
            raise error("unreachable", "connection refused")

    def _stamp(self, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta["resourceVersion"] = str(next(self._rv))
        return obj

    # test set-up helpers
    def put_claim(self, claim: Obj) -> Obj:
        with self._lock:
            meta = claim["metadata"]
            self.claims[(meta["namespace"], meta["name"])] = self._stamp(copy.deepcopy(claim))
            return copy.deepcopy(self.claims[(meta["namespace"], meta["name"])])

    def put_node(self, name: str) -> Obj:
        with self._lock:
            self.nodes[name] = self._stamp({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
            return copy.deepcopy(self.nodes[name])

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
            return copy.deepcopy(self.slices[name])

    def delete_slice(self, name: str) -> None:
        with self._lock:
            self._check("delete_slice")
            if self.slices.pop(name, None) is None:
                raise error("not_found", f'resourceslices "{name}" not found')

    def create_event(self, obj: Obj) -> None:
        with self._lock:
            self._check("create_event")
            self.events.append(self._stamp(copy.deepcopy(obj)))
