"""A thin client for the test bed: plain dicts in and out, any kind (resource.k8s.io/v1 included), the server's
own error message on failure, and helpers for the objects a kubelet would normally create (Nodes)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError

Obj = dict[str, Any]
FIELD_MANAGER = "gpupolicy-e2e"


class KubeError(Exception):
    """The API server refused a request; ``message`` is the server's own explanation."""

    def __init__(self, status: int, reason: str, message: str, obj: Obj | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.obj = obj


def _error(exc: DynamicApiError, obj: Obj | None) -> KubeError:
    message, reason = str(exc.body or ""), str(exc.reason or "")
    try:
        body = json.loads(exc.body)
        message, reason = body.get("message", message), body.get("reason", reason)
    except (TypeError, ValueError):
        pass
    return KubeError(int(exc.status or 0), reason, message, obj)


@dataclass
class Kube:
    """Dynamic-client access to one API server as the admin."""

    api: k8s.ApiClient
    dyn: DynamicClient

    @classmethod
    def connect(
        cls, server: str, token: str, ca_file: Path, discovery_cache: Path, headers: dict[str, str] | None = None
    ) -> Kube:
        """As the admin; ``headers`` adds e.g. ``Impersonate-User`` to act as another identity."""
        config = k8s.Configuration()
        config.host = server
        config.ssl_ca_cert = str(ca_file)
        config.api_key = {"BearerToken": token}
        config.api_key_prefix = {"BearerToken": "Bearer"}
        api = k8s.ApiClient(config)
        for key, value in (headers or {}).items():
            api.set_default_header(key, value)
        return cls(api, DynamicClient(api, cache_file=str(discovery_cache)))

    def close(self) -> None:
        self.api.close()

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dyn.resources.get(api_version=api_version, kind=kind)

    def _call(self, obj: Obj | None, fn: Callable[[], Any]) -> Obj:
        try:
            result = fn()
        except DynamicApiError as exc:
            raise _error(exc, obj) from None
        return dict(result.to_dict()) if result is not None else {}

    def create(self, obj: Obj, *, dry_run: bool = False) -> Obj:
        """POST the object; with ``dry_run`` the server validates and admits it but stores nothing."""
        res = self._resource(obj["apiVersion"], obj["kind"])
        namespace = obj.get("metadata", {}).get("namespace") if res.namespaced else None
        kwargs: dict[str, Any] = {"field_manager": FIELD_MANAGER}
        if dry_run:
            kwargs["dry_run"] = "All"
        return self._call(obj, lambda: res.create(body=obj, namespace=namespace, **kwargs))

    def apply(self, obj: Obj, *, dry_run: bool = False, namespace: str | None = None) -> Obj:
        """Server-side apply (create or update), as ``kubectl apply --server-side [--dry-run=server]``."""
        res = self._resource(obj["apiVersion"], obj["kind"])
        ns = (namespace or obj.get("metadata", {}).get("namespace")) if res.namespaced else None
        kwargs: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force_conflicts": True}
        if dry_run:
            kwargs["dry_run"] = "All"
        return self._call(obj, lambda: res.server_side_apply(body=obj, namespace=ns, **kwargs))

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj:
        res = self._resource(api_version, kind)
        return self._call(None, lambda: res.get(name=name, namespace=namespace))

    def list(self, api_version: str, kind: str, namespace: str | None = None, **selectors: str) -> list[Obj]:
        res = self._resource(api_version, kind)
        result = self._call(None, lambda: res.get(namespace=namespace, **selectors))
        return list(result.get("items") or [])

    def replace(self, obj: Obj) -> Obj:
        res = self._resource(obj["apiVersion"], obj["kind"])
        namespace = obj["metadata"].get("namespace") if res.namespaced else None
        return self._call(obj, lambda: res.replace(body=obj, namespace=namespace))

    def replace_status(self, obj: Obj) -> Obj:
        res = self._resource(obj["apiVersion"], obj["kind"])
        status = res.subresources["status"]
        namespace = obj["metadata"].get("namespace") if res.namespaced else None
        return self._call(obj, lambda: status.replace(body=obj, namespace=namespace))

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, graceful: bool = False
    ) -> None:
        """Delete; a Pod goes at once unless ``graceful`` (a real kubelet then stops it and confirms)."""
        res = self._resource(api_version, kind)
        grace = 0 if kind == "Pod" and not graceful else None
        try:
            res.delete(name=name, namespace=namespace, grace_period_seconds=grace)
        except DynamicApiError as exc:
            if exc.status != 404:
                raise _error(exc, None) from None

    def delete_all(self, objs: Iterable[Obj]) -> None:
        for obj in objs:
            meta = obj.get("metadata", {})
            self.delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))

    def raw(self, method: str, path: str, body: Any = None) -> Any:
        """Any request by path (for ``/metrics``, ``/version``, subresources the dynamic client lacks)."""
        response = self.api.call_api(
            *self.api.param_serialize(
                method,
                path,
                header_params={"Accept": "application/json, text/plain", "Content-Type": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
            ),
            _request_timeout=30,
        )
        response.read()
        text = response.data.decode()
        if response.status >= 400:
            raise KubeError(response.status, "", text)
        return json.loads(text) if text.startswith(("{", "[")) else text

    def wait_for(self, what: str, probe: Callable[[], Any], timeout_s: float = 60.0) -> Any:
        """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(0.2)


def enabled_features(kube: Kube) -> dict[str, bool]:
    """Feature gates as the running apiserver reports them (``kubernetes_feature_enabled`` metric)."""
    gates = {}
    for line in str(kube.raw("GET", "/metrics")).splitlines():
        if line.startswith("kubernetes_feature_enabled{"):
            labels, value = line.rsplit(" ", 1)
            name = labels.split('name="', 1)[1].split('"', 1)[0]
            gates[name] = float(value) == 1.0
    return gates


def node_manifest(
    name: str,
    *,
    cpu: str = "64",
    memory: str = "512Gi",
    pods: str = "110",
    labels: dict[str, str] | None = None,
) -> Obj:
    """A Node as a kubelet would register it: capacity, allocatable and a Ready condition."""
    resources = {"cpu": cpu, "memory": memory, "pods": pods}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "fake node created by the gpupolicy test bed",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        },
    }


def create_node(kube: Kube, name: str, **kwargs: Any) -> Obj:
    """Create a fake Node (no kubelet) and set its status through the status subresource.

    The TaintNodesByCondition admission plugin gives every new Node the ``not-ready`` taint, which the node
    lifecycle controller would lift once the kubelet reports Ready; with no kubelet, we lift it ourselves."""
    wanted = node_manifest(name, **kwargs)
    created = kube.create(wanted)
    created["status"] = wanted["status"]
    ready = kube.replace_status(created)
    ready["spec"]["taints"] = []
    return kube.replace(ready)


def create_namespace(kube: Kube, name: str) -> Obj:
    """A namespace with its ``default`` ServiceAccount, which pods need and no controller creates here."""
    namespace = kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}})
    return namespace
