"""The one Kubernetes client of gpupolicy: the kubelet plugin, the placement controller and ``solve --kubeconfig``.

Objects are wire dicts (:data:`~gpupolicy.plugin.kube.resources.Obj`). Requests go straight to the connection
pool of the kubernetes package's ``ApiClient`` (its TLS, proxy and credential settings, no code generation on the
path: the generic request path costs about 0.4 ms of CPU more per call). One path for every verb:

- sync: :meth:`Client.request` and the verbs on top (``list``, ``get``, ``create``, ``update``, ``delete``);
- async: :meth:`Client.get_async`, a GET on the running event loop without a thread (``asyncget``);
- :meth:`Client.watch`: list+watch of one kind (optionally field-selected), reconnecting, with backoff on failures;
- :meth:`Client.inform`: the same with the objects (a paged list, then each event's object), to keep a cache.

At most ``max_concurrent`` requests of one client are in flight at once on threads, and as many on each event loop
(more wait for a turn, which their timeout does not count). Every failure is an
:class:`~gpupolicy.plugin.kube.errors.ApiError`. Answers that carry ``Retry-After`` (429, and
5xx that name it) are retried after the time the server asks, at most ``max_retries`` times, as client-go does.
The kubernetes package is imported when a client is made, not with this module (``gpupolicy validate`` never
loads it).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gpupolicy.plugin.kube import asyncget
from gpupolicy.plugin.kube.errors import ApiError, Unreachable, from_response, retry_after
from gpupolicy.plugin.kube.resources import RESOURCES, Obj, path

log = logging.getLogger(__name__)

MAX_CONCURRENT = 64
"""Requests one client has in flight at most (and so connections open), on threads and on each event loop: kubelet
may send thousands of claims in one call, and a connection for each ran out of file descriptors and timed out."""
WATCH_BACKOFF_S = (1.0, 30.0)
"""A failed watch is tried again after 1 s, then after twice the previous wait, at most 30 s."""
LIST_PAGE = 500
"""Objects per page of a list an informer reads (client-go's reflector pages by 500 too)."""
AUTH_REUSE_S = 1.0
"""How long requests reuse their auth headers before asking the configuration again (which runs its
token-refresh hook: an in-cluster service-account token or a kubeconfig exec plugin)."""


class Api(Protocol):
    """What the controller and the CLI need of the API server; :class:`Client` is the real one."""

    def list(self, kind: str) -> list[Obj]: ...

    def get(self, kind: str, namespace: str | None, name: str) -> Obj: ...

    def create(self, kind: str, obj: Obj) -> Obj: ...

    def update(self, kind: str, obj: Obj, *, status: bool = False) -> Obj:
        """PUT with the object's ``metadata.resourceVersion``: :class:`Conflict` if it moved on."""
        ...

    def evict(self, namespace: str, name: str, *, uid: str = "", dry_run: bool = False) -> None:
        """POST a ``policy/v1`` Eviction to ``pods/<name>/eviction``: :class:`BudgetExceeded` (a
        :class:`TooManyRequests`) when a PodDisruptionBudget forbids it, :class:`Conflict` when ``uid`` is not the
        pod's any more, :class:`NotFound` when the pod is gone. ``dry_run``: checked (budgets included), nothing
        changed."""
        ...


@dataclass(frozen=True)
class Retry:
    """How answers with ``Retry-After`` are retried: at most ``max_retries`` times, each wait capped."""

    max_retries: int = 10  # client-go's default
    max_wait_s: float = 10.0


def load_configuration(kubeconfig: Path | None, pool_size: int) -> Any:
    """A kubernetes ``ApiClient`` for the ``kubeconfig`` file, or the in-cluster service account when None.
    Raises what the kubernetes config loader raises (``ConfigException``, YAML and OS errors)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    configuration.retries = 0  # no retries inside urllib3: Client decides
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str | None
    body: bytes
    headers: Mapping[str, str]


class Client:
    """The API server of ``kubeconfig`` (in-cluster when None)."""

    def __init__(
        self,
        kubeconfig: Path | None,
        *,
        timeout_s: float = 30.0,
        pool_size: int = 16,
        retry: Retry = Retry(),
        sleep: Callable[[float], None] = time.sleep,
        max_concurrent: int = MAX_CONCURRENT,
        server_timeout: bool = False,
    ) -> None:
        """``server_timeout``: every request also asks the API server to give up after ``timeout_s`` (the
        ``timeout`` query parameter, as client-go sends it), so that a request the client stopped waiting for is
        not applied long after, e.g. one held in an API Priority and Fairness queue."""
        self._api = load_configuration(kubeconfig, pool_size)
        self._max_concurrent = max_concurrent
        self._slots = threading.BoundedSemaphore(max_concurrent)
        """Requests in flight on threads (a watch's long poll excepted)."""
        self._host = self._api.configuration.host
        self._timeout = timeout_s
        self._server_timeout = server_timeout
        self._retry = retry
        self._sleep = sleep
        self._auth_lock = threading.Lock()
        self._auth: tuple[float, dict[str, str]] = (-1.0, {})
        self._getters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncget.AsyncGetter] = (
            weakref.WeakKeyDictionary()
        )

    # -- the verbs

    def list(self, kind: str, *, field_selector: str | None = None) -> list[Obj]:
        """Every object of ``kind`` (all namespaces); each item gets the ``apiVersion`` and ``kind`` a list omits."""
        query = {"fieldSelector": field_selector} if field_selector else None
        items = self.request("GET", path(kind, query=query)).get("items") or []
        res = RESOURCES[kind]
        for item in items:
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind)
        return list(items)

    def list_versioned(self, kind: str, *, page: int = LIST_PAGE) -> tuple[builtins.list[Obj], str]:
        """Every object of ``kind`` and the list's resourceVersion (to watch from), read in pages of ``page``
        (``limit``/``continue``: one consistent list, as client-go's reflector reads it)."""
        res = RESOURCES[kind]
        items: builtins.list[Obj] = []
        query = {"limit": str(page)}
        while True:
            answer = self.request("GET", path(kind, query=query))
            meta = answer.get("metadata") or {}
            for item in answer.get("items") or []:
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
                items.append(item)
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion") or "")
            query = {"limit": str(page), "continue": str(meta["continue"])}

    def inform(
        self,
        kind: str,
        stop: threading.Event,
        replace: Callable[[builtins.list[Obj], str], None],
        event: Callable[[str, Obj], None],
        timeout_s: int = 60,
        *,
        backoff_s: tuple[float, float] = WATCH_BACKOFF_S,
    ) -> None:
        """Until ``stop``: what client-go's reflector does for an informer. List ``kind`` (:meth:`list_versioned`)
        and hand every object to ``replace``, then watch from the list's resourceVersion and hand each event
        (``ADDED``, ``MODIFIED``, ``DELETED``, with the object) to ``event``; bookmarks move the version on.
        Reconnects where the last event left off; lists again on 410 Gone. Failures are retried with the backoff
        of :meth:`watch`."""
        outage = _Outage(kind, backoff_s)
        res = RESOURCES[kind]

        def typed(kind_of: str, obj: Obj) -> None:
            obj.setdefault("apiVersion", res.api_version)
            obj.setdefault("kind", res.kind)
            event(kind_of, obj)

        while not stop.is_set():
            try:
                items, version = self.list_versioned(kind)
                if not version:
                    raise ApiError(f"the list of {kind} has no resourceVersion to watch from")
                replace(items, version)
                while not stop.is_set() and version:
                    version = self._watch_once(kind, {}, version, stop, typed, outage, timeout_s)
            except ApiError as exc:
                if not stop.is_set():
                    stop.wait(outage.failed(exc))

    def get(self, kind: str, namespace: str | None, name: str) -> Obj:
        return self.request("GET", path(kind, namespace, name))

    def create(self, kind: str, obj: Obj) -> Obj:
        return self.request("POST", path(kind, obj["metadata"].get("namespace")), obj)

    def update(self, kind: str, obj: Obj, *, status: bool = False) -> Obj:
        meta = obj["metadata"]
        return self.request("PUT", path(kind, meta.get("namespace"), meta["name"], "status" if status else None), obj)

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        self.request("DELETE", path(kind, namespace, name))

    def evict(self, namespace: str, name: str, *, uid: str = "", dry_run: bool = False) -> None:
        """The Eviction API (what ``kubectl drain`` uses): the API server checks the pod's PodDisruptionBudget,
        marks the pod ``DisruptionTarget`` and deletes it gracefully. ``uid``: only that pod (a precondition), not
        one recreated with the same name."""
        body: Obj = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
        if uid:
            body["deleteOptions"] = {"preconditions": {"uid": uid}}
        query = {"dryRun": "All"} if dry_run else None
        self.request("POST", path("pods", namespace, name, "eviction", query=query), body)

    async def get_async(self, kind: str, namespace: str | None, name: str) -> Obj:
        """``get`` on the running event loop, without a thread (see ``asyncget``); through a thread when the
        configuration needs what ``asyncget`` does not do (a proxy)."""
        loop = asyncio.get_running_loop()
        if not asyncget.supports(self._api.configuration):
            return await loop.run_in_executor(None, self.get, kind, namespace, name)
        if time.monotonic() - self._auth[0] >= AUTH_REUSE_S:  # may run a credential plugin: not on the loop
            await loop.run_in_executor(None, self._headers)
        getter = self._getters.get(loop)
        if getter is None:
            getter = self._getters[loop] = asyncget.AsyncGetter(
                self._api.configuration, lambda: self._auth[1], self._timeout, self._max_concurrent
            )
        target = path(kind, namespace, name)
        for attempt in range(self._retry.max_retries + 1):
            try:
                response = await getter.get(target)
            except asyncget.HttpError as exc:
                raise Unreachable(str(exc)) from exc
            answer = _Answer(response.status, response.reason, response.body, response.headers)
            wait = self._wait(answer, attempt)
            if wait is None:
                return _decode(answer)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def aclose(self) -> None:
        """Close what ``get_async`` keeps open on the running event loop (before the loop closes)."""
        getter = self._getters.pop(asyncio.get_running_loop(), None)
        if getter is not None:
            await getter.close()

    def close(self) -> None:
        self._api.close()

    # -- one request

    def request(self, method: str, resource_path: str, body: Obj | None = None) -> Obj:
        """``method`` on ``resource_path`` with a JSON ``body``; the decoded answer ({} when empty)."""
        data = json.dumps(body).encode() if body is not None else None
        if self._server_timeout:
            resource_path += ("&" if "?" in resource_path else "?") + f"timeout={self._timeout:g}s"
        for attempt in range(self._retry.max_retries + 1):
            with self._slots:
                answer = self._send(method, resource_path, data)
            wait = self._wait(answer, attempt)
            if wait is None:
                return _decode(answer)
            self._sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _wait(self, answer: _Answer, attempt: int) -> float | None:
        """Seconds to wait before trying again, or None to answer now (success, or an error to raise)."""
        if answer.status != 429 and answer.status < 500:
            return None
        seconds = retry_after(answer.headers)
        if seconds is None or attempt >= self._retry.max_retries:
            return None
        return min(seconds, self._retry.max_wait_s)

    def _send(self, method: str, resource_path: str, data: bytes | None, **options: Any) -> Any:
        headers = dict(self._headers())
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self._api.rest_client.pool_manager.request(
                method,
                self._host + resource_path,
                body=data,
                headers=headers,
                timeout=options.pop("timeout", self._timeout),
                retries=False,
                **options,
            )
        except Exception as exc:  # urllib3 connection errors, TLS errors, timeouts
            raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
        if options.get("preload_content") is False:
            return response
        return _Answer(response.status, response.reason, response.data or b"", response.headers)

    def _headers(self) -> dict[str, str]:
        """Accept, User-Agent and auth headers, refreshed from the configuration every ``AUTH_REUSE_S``."""
        now = time.monotonic()
        with self._auth_lock:
            if now - self._auth[0] >= AUTH_REUSE_S:
                headers = {"Accept": "application/json", **self._api.default_headers}
                self._api.update_params_for_auth(headers, [], ["BearerToken"], "", "GET", None)
                self._auth = (now, headers)
            return self._auth[1]

    # -- watches

    def watch(
        self,
        kind: str,
        stop: threading.Event,
        changed: Callable[[], None],
        timeout_s: int = 60,
        *,
        field_selector: str | None = None,
        listed: Callable[[], None] | None = None,
        backoff_s: tuple[float, float] = WATCH_BACKOFF_S,
    ) -> None:
        """Until ``stop``: list+watch ``kind`` from the list's resourceVersion, calling ``changed`` on every event
        (bookmarks excepted) and ``listed`` after every list (what changed before it came with no event). Both
        requests select with ``field_selector``. Reconnects when the server ends the watch; lists again when the
        version is too old (410). A failure (unreachable, an error answer such as 403 when RBAC lacks ``watch``) is
        retried after a wait doubling from ``backoff_s[0]`` to ``backoff_s[1]``, and logged once per outage: a
        warning at the first, a line when a watch is open again. ``stop`` ends it at the next event, or when the
        server ends the watch request (``timeout_s``)."""
        selector = {"fieldSelector": field_selector} if field_selector else {}
        outage = _Outage(kind + (f" ({field_selector})" if field_selector else ""), backoff_s)
        while not stop.is_set():
            try:
                found = self.request("GET", path(kind, query={**selector, "limit": "1"}))
                version = str((found.get("metadata") or {}).get("resourceVersion") or "")
                if not version:
                    raise ApiError(f"the list of {kind} has no resourceVersion to watch from")
                if listed is not None:
                    listed()
                while not stop.is_set() and version:
                    version = self._watch_once(kind, selector, version, stop, lambda _t, _o: changed(), outage,
                                               timeout_s)  # fmt: skip
            except ApiError as exc:
                if not stop.is_set():
                    stop.wait(outage.failed(exc))

    def _watch_once(
        self,
        kind: str,
        selector: dict[str, str],
        version: str,
        stop: threading.Event,
        changed: Callable[[str, Obj], None],
        outage: _Outage,
        timeout_s: int,
    ) -> str:
        """One watch request; returns the version to resume from ("" to list again)."""
        from urllib3 import Timeout

        query = {
            **selector,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_s),
            "resourceVersion": version,
        }
        timeout = Timeout(connect=5, read=timeout_s + 30)
        response = self._send("GET", path(kind, query=query), None, timeout=timeout, preload_content=False)
        read = False  # to its end: else the connection is closed, not reused (what is left would be the next answer)
        try:
            if response.status == 410:  # Gone: the version is too old
                response.drain_conn()
                read = True
                return ""
            if response.status >= 400:
                body, read = response.read(), True
                raise from_response(response.status, response.reason, body, response.headers)
            outage.ended()
            version, read = _read_events(response.stream(4096), version, stop, changed)
            return version
        except ApiError:
            raise
        except Exception as exc:  # the stream broke (timeouts, reset connections)
            raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
        finally:
            if not read:
                response.close()
            response.release_conn()


class _Outage:
    """The failures of one watch in a row: the wait before the next try, and one log line when they start and one
    when a watch is open again (not one per try: a watch RBAC does not allow fails every try, for as long as it
    runs)."""

    def __init__(self, what: str, backoff_s: tuple[float, float]) -> None:
        self.what = what
        self.backoff_s = backoff_s
        self.failures = 0

    def failed(self, exc: ApiError) -> float:
        self.failures += 1
        if self.failures == 1:
            log.warning("watch of %s failed, retrying with backoff (logged again once it is back): %s", self.what, exc)
        base, cap = self.backoff_s
        return float(min(cap, base * 2 ** min(self.failures - 1, 30)))

    def ended(self) -> None:
        if self.failures:
            log.info("watch of %s is back after %d failed tries", self.what, self.failures)
        self.failures = 0


def _read_events(
    chunks: Any, version: str, stop: threading.Event, changed: Callable[[str, Obj], None]
) -> tuple[str, bool]:
    """Read watch events until the stream ends, an ERROR event or ``stop``, calling ``changed`` with each change
    (type and object; bookmarks only move the version on): the version to resume from ("" to list again), and
    whether the stream was read to its end."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            event = json.loads(line) if line.strip() else {}
            kind_of = event.get("type")
            obj = event.get("object") or {}
            if kind_of == "ERROR":
                if obj.get("code") == 410:  # Gone: too old, list again
                    return "", False
                raise from_response(int(obj.get("code") or 500), obj.get("reason"), json.dumps(obj).encode(), {})
            version = str((obj.get("metadata") or {}).get("resourceVersion", version))
            if kind_of in ("ADDED", "MODIFIED", "DELETED"):
                changed(str(kind_of), obj)
        if stop.is_set():
            return version, False
    return version, True


def _decode(answer: _Answer) -> Obj:
    if answer.status >= 400:
        raise from_response(answer.status, answer.reason, answer.body, answer.headers)
    if not answer.body:
        return {}
    try:
        return dict(json.loads(answer.body))
    except (ValueError, TypeError) as exc:
        raise ApiError(f"{answer.status}: the answer is not a JSON object: {answer.body[:100]!r}") from exc
