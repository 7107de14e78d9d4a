"""The few Kubernetes API calls the plugin makes, behind one protocol with a real and a fake client.

Objects are wire dicts in the shape ``kubectl get -o json`` shows. The real client talks to
``/apis/resource.k8s.io/v1`` through the kubernetes package's custom-objects API, which builds the
same paths for built-in groups; ``tests.fakes.kube.FakeKube`` keeps objects in memory for unit tests and
backs the HTTP API-server stand-in (``tests.fakes.kube_stub``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from gpupolicy.plugin.kube import asyncget as kube_async
from gpupolicy.plugin.timefmt import kube_time

GROUP = "resource.k8s.io"
VERSION = "v1"
Obj = dict[str, Any]
AUTH_REUSE_S = 1.0
"""How long the hot path reuses its auth headers before asking the configuration again (which runs
its token-refresh hook: an in-cluster service-account token or a kubeconfig exec plugin)."""


class KubeError(Exception):
    """An API call failed: ``code`` is ``not_found``, ``conflict``, ``unreachable`` or ``api_error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class Kube(Protocol):
    def get_claim(self, namespace: str, name: str) -> Obj: ...

    async def get_claim_async(self, namespace: str, name: str) -> Obj: ...

    async def aclose(self) -> None:
        """Close what ``get_claim_async`` keeps open on the running event loop (before the loop closes)."""

    def list_claims(self) -> list[Obj]: ...

    def get_node(self, name: str) -> Obj: ...

    def list_slices(self, driver: str, node: str) -> list[Obj]: ...

    def create_slice(self, obj: Obj) -> Obj: ...

    def replace_slice(self, obj: Obj) -> Obj: ...

    def delete_slice(self, name: str) -> None: ...

    def create_event(self, obj: Obj) -> None: ...


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


def api_client(kubeconfig: Path | None, pool_size: int) -> Any:
    """A kubernetes ``ApiClient`` for the ``kubeconfig`` file, or the in-cluster service account when None.
    No retries inside the client: callers decide how to retry."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    configuration.retries = 0
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


def _claim_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace, safe='')}/resourceclaims/{quote(name, safe='')}"


class RealKube:
    """The kubernetes client: ``kubeconfig`` file, or the in-cluster service account when None."""

    def __init__(self, kubeconfig: Path | None, timeout_s: float = 5.0) -> None:
        from kubernetes import client

        self._api = api_client(kubeconfig, pool_size=64)  # kubelet sends many claims at once
        self._custom = client.CustomObjectsApi(self._api)
        # No CoreV1Api: constructing it imports ~250 model modules (close to a second at start-up).
        self._timeout = timeout_s
        self._host = self._api.configuration.host
        self._auth_lock = threading.Lock()
        self._auth: tuple[float, dict[str, str]] = (-1.0, {})
        self._getters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, _request_timeout=self._timeout, **kwargs)
        except ApiException as exc:
            code = {404: "not_found", 409: "conflict"}.get(exc.status or 0, "api_error")
            raise KubeError(code, f"{exc.status} {exc.reason}: {(exc.body or '')[:300]}") from exc
        except Exception as exc:  # urllib3 connection errors, timeouts
            raise KubeError("unreachable", f"{type(exc).__name__}: {exc}") from exc

    def get_claim(self, namespace: str, name: str) -> Obj:
        # On every prepare, so straight to the client's connection pool: the generic request path
        # costs about 0.4 ms of CPU more per call (argument sanitising, and a token-refresh hook that
        # re-reads the proxy environment), which 64 concurrent prepares pay under one GIL.
        try:
            response = self._api.rest_client.pool_manager.request(
                "GET",
                self._host + _claim_path(namespace, name),
                headers=dict(self._headers()),
                timeout=self._timeout,
                retries=False,
            )
        except Exception as exc:  # urllib3 connection errors, timeouts
            raise KubeError("unreachable", f"{type(exc).__name__}: {exc}") from exc
        return self._decode(response.status, response.reason, response.data)

    async def get_claim_async(self, namespace: str, name: str) -> Obj:
        """``get_claim`` on the running event loop, without a thread (see ``gpupolicy.plugin.kube.asyncget``)."""
        loop = asyncio.get_running_loop()
        if not kube_async.supports(self._api.configuration):
            return await loop.run_in_executor(None, self.get_claim, namespace, name)
        if time.monotonic() - self._auth[0] >= AUTH_REUSE_S:  # may run a credential plugin: not on the loop
            await loop.run_in_executor(None, self._headers)
        getter = self._getters.get(loop)
        if getter is None:
            getter = self._getters[loop] = kube_async.AsyncGetter(
                self._api.configuration, lambda: self._auth[1], self._timeout
            )
        try:
            response = await getter.get(_claim_path(namespace, name))
        except kube_async.HttpError as exc:
            raise KubeError("unreachable", str(exc)) from exc
        return self._decode(response.status, response.reason, response.body)

    async def aclose(self) -> None:
        getter = self._getters.pop(asyncio.get_running_loop(), None)
        if getter is not None:
            await getter.close()

    def _headers(self) -> dict[str, str]:
        """Accept, User-Agent and auth headers, refreshed from the configuration every ``AUTH_REUSE_S``."""
        now = time.monotonic()
        with self._auth_lock:
            if now - self._auth[0] >= AUTH_REUSE_S:
                headers = {"Accept": "application/json", **self._api.default_headers}
                self._api.update_params_for_auth(headers, [], ["BearerToken"], "", "GET", None)
                self._auth = (now, headers)
            return self._auth[1]

    def list_claims(self) -> list[Obj]:
        return list(self._call(self._custom.list_cluster_custom_object, GROUP, VERSION, "resourceclaims")["items"])

    def _get_raw(self, path: str, **params: str) -> Obj:
        return self._raw("GET", path, None, **params)

    def _raw(self, verb: str, path: str, body: Obj | None, **params: str) -> Obj:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        method, url, headers, data, _ = self._api.param_serialize(
            verb, path, path_params=params, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        try:
            response = self._api.call_api(method, url, header_params=headers, body=data, _request_timeout=self._timeout)
            response.read()
        except Exception as exc:  # urllib3 connection errors, timeouts
            raise KubeError("unreachable", f"{type(exc).__name__}: {exc}") from exc
        return self._decode(response.status, response.reason, response.data)

    @staticmethod
    def _decode(status: int, reason: str | None, data: bytes) -> Obj:
        if status >= 400:
            code = {404: "not_found", 409: "conflict"}.get(status, "api_error")
            raise KubeError(code, f"{status} {reason}: {data[:300]!r}")
        return dict(json.loads(data))

    def get_node(self, name: str) -> Obj:
        node = self._get_raw("/api/v1/nodes/{name}", name=name)
        return {"metadata": {"name": node["metadata"]["name"], "uid": node["metadata"].get("uid", "")}}

    def list_slices(self, driver: str, node: str) -> list[Obj]:
        selector = f"spec.nodeName={node},spec.driver={driver}"
        result = self._call(
            self._custom.list_cluster_custom_object, GROUP, VERSION, "resourceslices", field_selector=selector
        )
        return list(result["items"])

    def create_slice(self, obj: Obj) -> Obj:
        return dict(self._call(self._custom.create_cluster_custom_object, GROUP, VERSION, "resourceslices", obj))

    def replace_slice(self, obj: Obj) -> Obj:
        name = obj["metadata"]["name"]
        return dict(self._call(self._custom.replace_cluster_custom_object, GROUP, VERSION, "resourceslices", name, obj))

    def delete_slice(self, name: str) -> None:
        self._call(self._custom.delete_cluster_custom_object, GROUP, VERSION, "resourceslices", name)

    def create_event(self, obj: Obj) -> None:
        self._raw("POST", "/api/v1/namespaces/{namespace}/events", obj, namespace=obj["metadata"]["namespace"])
