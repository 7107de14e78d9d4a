"""The API calls the kubelet plugin makes, as one small protocol: :class:`NodeApi` is the real one, over the one
:class:`~gpupolicy.plugin.kube.client.Client`; ``tests.fakes.kube.FakeKube`` keeps objects in memory for unit tests
and backs the HTTP stand-in (``tests.fakes.kube_stub``). Failures are :mod:`gpupolicy.plugin.kube.errors`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from gpupolicy.plugin.kube import Client, Obj, Retry
from gpupolicy.plugin.timefmt import kube_time

DEFAULT_TIMEOUT_S = 5.0
POOL_SIZE = 64  # kubelet sends many claims at once
RETRY = Retry(max_retries=3, max_wait_s=5.0)  # kubelet gives a prepare call a deadline of its own


class Kube(Protocol):
    def get_claim(self, namespace: str, name: str) -> Obj: ...

    async def get_claim_async(self, namespace: str, name: str) -> Obj: ...

    async def aclose(self) -> None:
        """Close what ``get_claim_async`` keeps open on the running event loop (before the loop closes)."""

    def list_claims(self) -> list[Obj]: ...

    def get_node(self, name: str) -> Obj: ...

    def list_slices(self, driver: str, node: str) -> list[Obj]: ...

    def watch_slices(self, driver: str, node: str, stop: threading.Event, changed: Callable[[], None]) -> None:
        """Until ``stop``: call ``changed`` when a slice of ``driver`` on ``node`` is added, modified or deleted, and
        once the watch is (again) open (what changed before came with no event). Never raises: a failing watch is
        retried with backoff."""

    def watch_node(self, name: str, stop: threading.Event, changed: Callable[[], None]) -> None:
        """``watch_slices`` for the Node ``name``."""

    def create_slice(self, obj: Obj) -> Obj: ...

    def replace_slice(self, obj: Obj) -> Obj: ...

    def delete_slice(self, name: str) -> None: ...

    def create_event(self, obj: Obj) -> None: ...


class NodeApi:
    """:class:`Kube` through the API server of ``kubeconfig`` (the in-cluster service account when None)."""

    def __init__(self, kubeconfig: Path | None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.client = Client(kubeconfig, timeout_s=timeout_s, pool_size=POOL_SIZE, retry=RETRY)

    def get_claim(self, namespace: str, name: str) -> Obj:
        return self.client.get("resourceclaims", namespace, name)

    async def get_claim_async(self, namespace: str, name: str) -> Obj:
        return await self.client.get_async("resourceclaims", namespace, name)

    async def aclose(self) -> None:
        await self.client.aclose()

    def list_claims(self) -> list[Obj]:
        return self.client.list("resourceclaims")

    def get_node(self, name: str) -> Obj:
        node = self.client.get("nodes", None, name)
        return {"metadata": {"name": node["metadata"]["name"], "uid": node["metadata"].get("uid", "")}}

    def list_slices(self, driver: str, node: str) -> list[Obj]:
        return self.client.list("resourceslices", field_selector=_slices_of(driver, node))

    def watch_slices(self, driver: str, node: str, stop: threading.Event, changed: Callable[[], None]) -> None:
        self.client.watch("resourceslices", stop, changed, field_selector=_slices_of(driver, node), listed=changed)

    def watch_node(self, name: str, stop: threading.Event, changed: Callable[[], None]) -> None:
        # RBAC checks a list and a watch of nodes (with the name as resourceName): there is no "get" watch
        self.client.watch("nodes", stop, changed, field_selector=f"metadata.name={name}", listed=changed)

    def create_slice(self, obj: Obj) -> Obj:
        return self.client.create("resourceslices", obj)

    def replace_slice(self, obj: Obj) -> Obj:
        return self.client.update("resourceslices", obj)

    def delete_slice(self, name: str) -> None:
        self.client.delete("resourceslices", None, name)

    def create_event(self, obj: Obj) -> None:
        self.client.create("events", obj)


def _slices_of(driver: str, node: str) -> str:
    return f"spec.nodeName={node},spec.driver={driver}"


def node_event(node: str, node_uid: str, reason: str, message: str, warning: bool = True) -> Obj:
    """A core/v1 Event about the Node, as ``kubectl describe node`` lists them."""
    now = kube_time()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{node}.", "namespace": "default"},
        "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid},
        "reason": reason,
        "message": message[:1000],
        "type": "Warning" if warning else "Normal",
        "source": {"component": "gpupolicy-plugin", "host": node},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
