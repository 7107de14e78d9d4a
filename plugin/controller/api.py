"""The API calls the controller makes, behind one small protocol with a real client (here) and an in-memory fake
(``tests/plugin/controller/fakeapi.py``). Objects are wire dicts, as ``kubectl get -o json`` shows them.

Kinds are named by their plural resource (``pods``, ``resourceclaims`` …); :data:`RESOURCES` maps them to paths.
Every failure is an :class:`ApiError` with a code: ``not_found``, ``conflict`` (resourceVersion moved on, or the
object already exists), ``unreachable`` or ``api_error``.
"""

from __future__ import annotations

import contextlib
import json
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
        from kubernetes import client, config

        configuration = client.Configuration()
        if kubeconfig is not None:
            config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
        configuration.retries = 0
        configuration.connection_pool_maxsize = 16
        self._api = client.ApiClient(configuration)
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
