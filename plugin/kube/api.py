"""The API calls the controller makes, behind one small protocol with a real client (here) and an in-memory fake
(``tests/plugin/controller/fakeapi.py``). Objects are wire dicts, as ``kubectl get -o json`` shows them.

Kinds are named by their plural resource (``pods``, ``resourceclaims`` …); :data:`RESOURCES` maps them to paths.
Every failure is an :class:`ApiError` with a code: ``not_found``, ``conflict`` (resourceVersion moved on, or the
object already exists), ``unreachable`` or ``api_error``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"


RESOURCES = {
    "pods": Resource("v1", "Pod", "pods", True),
    "nodes": Resource("v1", "Node", "nodes", False),
    "namespaces": Resource("v1", "Namespace", "namespaces", False),
    "serviceaccounts": Resource("v1", "ServiceAccount", "serviceaccounts", True),
    "events": Resource("v1", "Event", "events", True),
    "resourceclaims": Resource("resource.k8s.io/v1", "ResourceClaim", "resourceclaims", True),
    "resourceslices": Resource("resource.k8s.io/v1", "ResourceSlice", "resourceslices", False),
    "deviceclasses": Resource("resource.k8s.io/v1", "DeviceClass", "deviceclasses", False),
    "leases": Resource("coordination.k8s.io/v1", "Lease", "leases", True),
}


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class Api(Protocol):
    def list(self, kind: str) -> list[Obj]: ...

    def get(self, kind: str, namespace: str | None, name: str) -> Obj: ...

    def create(self, kind: str, obj: Obj) -> Obj: ...

    def update(self, kind: str, obj: Obj, *, status: bool = False) -> Obj:
        """PUT with the object's ``metadata.resourceVersion``: ``conflict`` if it moved on."""
        ...


def path(kind: str, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
    res = RESOURCES[kind]
    out = res.prefix
    if res.namespaced and namespace:
        out += f"/namespaces/{namespace}"
    out += f"/{res.plural}"
    if name:
        out += f"/{name}"
    if sub:
        out += f"/{sub}"
    return out


class KubeApi:
    """The kubernetes package's ApiClient, raw paths, JSON bodies; ``kubeconfig`` None means in-cluster."""

    def __init__(self, kubeconfig: Path | None, timeout_s: float = 30.0) -> None:
        from gpupolicy.plugin.kube.client import api_client

        self._api = api_client(kubeconfig, pool_size=16)
        self._timeout = timeout_s

    def close(self) -> None:
        self._api.close()

    def _request(self, method: str, resource_path: str, body: Obj | None = None) -> Obj:
        from kubernetes.client.exceptions import ApiException

        try:
            response = self._api.call_api(
                *self._api.param_serialize(
                    method,
                    resource_path,
                    header_params={"Accept": "application/json", "Content-Type": "application/json"},
                    body=body,
                    auth_settings=["BearerToken"],
                ),
                _request_timeout=self._timeout,
            )
            response.read()
        except ApiException as exc:
            raise _error(exc.status or 0, str(exc.body or exc.reason)) from None
        except Exception as exc:  # urllib3 connection errors and timeouts
            raise ApiError("unreachable", f"{type(exc).__name__}: {exc}") from exc
        text = response.data.decode() if response.data else ""
        if response.status >= 400:
            raise _error(response.status, text)
        return dict(json.loads(text)) if text else {}

    def watch(self, kind: str, stop: threading.Event, changed: Callable[[], None], timeout_s: int = 60) -> None:
        """Until ``stop``: list+watch ``kind`` from the list's resourceVersion, calling ``changed`` on every event
        (bookmarks excepted). Reconnects when the server ends the watch; re-lists when the version is too old."""
        while not stop.is_set():
            try:
                listed = self._request("GET", path(kind) + "?limit=1")
                version = str((listed.get("metadata") or {}).get("resourceVersion", ""))
                while not stop.is_set() and version:
                    version = self._watch_once(kind, version, changed, timeout_s)
            except ApiError:
                stop.wait(1.0)

    def _watch_once(self, kind: str, version: str, changed: Callable[[], None], timeout_s: int) -> str:
        """One watch request; returns the version to resume from ("" to list again)."""
        query = f"?watch=true&allowWatchBookmarks=true&timeoutSeconds={timeout_s}&resourceVersion={version}"
        try:
            response = self._api.call_api(
                *self._api.param_serialize(
                    "GET",
                    path(kind) + query,
                    header_params={"Accept": "application/json"},
                    auth_settings=["BearerToken"],
                ),
                _request_timeout=(5, timeout_s + 30),
            )
        except Exception as exc:  # connection errors
            raise ApiError("unreachable", f"{type(exc).__name__}: {exc}") from exc
        if response.status >= 400:
            return ""
        buffer = b""
        try:
            for chunk in response.response.stream(4096):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    event = json.loads(line) if line.strip() else {}
                    kind_of = event.get("type")
                    obj = event.get("object") or {}
                    if kind_of == "ERROR":
                        return ""  # 410 Gone: too old, list again
                    version = str((obj.get("metadata") or {}).get("resourceVersion", version))
                    if kind_of in ("ADDED", "MODIFIED", "DELETED"):
                        changed()
        except Exception as exc:  # the stream broke (timeouts, reset connections)
            raise ApiError("unreachable", f"{type(exc).__name__}: {exc}") from exc
        finally:
            response.response.release_conn()
        return version

    def list(self, kind: str) -> list[Obj]:
        items = self._request("GET", path(kind)).get("items") or []
        res = RESOURCES[kind]
        for item in items:  # a list's items carry no kind; the solver's reader wants one
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind)
        return list(items)

    def get(self, kind: str, namespace: str | None, name: str) -> Obj:
        return self._request("GET", path(kind, namespace, name))

    def create(self, kind: str, obj: Obj) -> Obj:
        return self._request("POST", path(kind, obj["metadata"].get("namespace")), obj)

    def update(self, kind: str, obj: Obj, *, status: bool = False) -> Obj:
        meta = obj["metadata"]
        return self._request("PUT", path(kind, meta.get("namespace"), meta["name"], "status" if status else None), obj)


def _error(status: int, body: str) -> ApiError:
    message = body
    with contextlib.suppress(ValueError, AttributeError):
        message = str(json.loads(body).get("message", body))
    code = {404: "not_found", 409: "conflict"}.get(status, "api_error")
    return ApiError(code, f"{status}: {message[:500]}")
