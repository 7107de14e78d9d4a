"""What the kubelet plugin asks of the API server, as RBAC permissions, derived from the code that asks.

The plugin's one door to the API server is :class:`~gpupolicy.plugin.kubelet.api.NodeApi` (``plugin run``, and
``plugin withdraw`` through the same class). :func:`used_permissions` calls every method of its protocol,
:class:`~gpupolicy.plugin.kubelet.api.Kube`, and runs ``gpupolicy plugin withdraw``, against an HTTP stand-in that
records each request, and maps each request to the ``(apiGroup, resource, verb)`` that RBAC checks for it:
GET of an object ``get``, of a collection ``list`` (``watch`` with ``watch=true``), POST ``create``, PUT ``update``,
PATCH ``patch``, DELETE of an object ``delete``, of a collection ``deletecollection``.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from gpupolicy.plugin.cli.main import main
from gpupolicy.plugin.kubelet.api import Kube, NodeApi, node_event
from tests.fakes.http import QuietHandler, serving
from tests.fakes.kubeconfig import write_kubeconfig

Permission = tuple[str, str, str]
"""(apiGroup, resource, verb); the core group is ``""``; a subresource is ``resource/sub``."""

NODE = "node-a"
DRIVER = "gpu.gpupolicy.dev"
_SLICE = {
    "apiVersion": "resource.k8s.io/v1",
    "kind": "ResourceSlice",
    "metadata": {"name": f"{NODE}-0", "resourceVersion": "1"},
    "spec": {"driver": DRIVER, "nodeName": NODE, "pool": {"name": NODE, "generation": 1, "resourceSliceCount": 1}},
}


async def _get_async(api: NodeApi) -> None:
    try:
        await api.get_claim_async("default", "c")
    finally:
        await api.aclose()


def _watch(asked: list[tuple[str, str]], start: Callable[[threading.Event, Callable[[], None]], None]) -> None:
    """A watch, until its first event: it has then made its list and its watch request."""
    stop = threading.Event()

    def changed() -> None:
        if any("watch=true" in url for _, url in asked):  # not the call after the list
            stop.set()

    thread = threading.Thread(target=start, args=(stop, changed), daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), f"the watch did not end: requests {asked}"


CALLS: dict[str, Callable[[NodeApi, list[tuple[str, str]]], object]] = {
    "get_claim": lambda api, _: api.get_claim("default", "c"),
    "get_claim_async": lambda api, _: asyncio.run(_get_async(api)),
    "list_claims": lambda api, _: api.list_claims(),
    "get_node": lambda api, _: api.get_node(NODE),
    "list_slices": lambda api, _: api.list_slices(DRIVER, NODE),
    "watch_slices": lambda api, asked: _watch(asked, lambda stop, f: api.watch_slices(DRIVER, NODE, stop, f)),
    "watch_node": lambda api, asked: _watch(asked, lambda stop, f: api.watch_node(NODE, stop, f)),
    "create_slice": lambda api, _: api.create_slice(_SLICE),
    "replace_slice": lambda api, _: api.replace_slice(_SLICE),
    "delete_slice": lambda api, _: api.delete_slice(_SLICE["metadata"]["name"]),  # type: ignore[index]
    "create_event": lambda api, _: api.create_event(node_event(NODE, "uid", "Reason", "message")),
}
"""How to call each request-making method of :class:`Kube` (``aclose`` makes none)."""


def public(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


def permission(method: str, url: str) -> Permission:
    """The permission RBAC checks for ``method`` on ``url`` (a path with its query)."""
    parts = urlsplit(url)
    segments = parts.path.strip("/").split("/")
    if segments[0] == "api":
        group, rest = "", segments[2:]
    elif segments[0] == "apis":
        group, rest = segments[1], segments[3:]
    else:
        raise ValueError(f"not a resource path: {url}")
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    resource = rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"
    named = len(rest) >= 2
    watch = parse_qs(parts.query).get("watch", [""])[0] in ("true", "1")
    verbs = {
        "GET": "watch" if watch else "get" if named else "list",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if named else "deletecollection",
    }
    return group, resource, verbs[method]


@contextmanager
def recording_api() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """An HTTP stand-in that answers every request with one generic object (a list holds one slice, a watch is one
    ADDED event of it); yields its URL and the (method, path with query) of each request, in order."""
    asked: list[tuple[str, str]] = []

    class Handler(QuietHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            asked.append((self.command, self.path))
            if "watch=true" in self.path:
                event = json.dumps({"type": "ADDED", "object": _SLICE}).encode() + b"\n"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event))
                return
            body = json.dumps({**_SLICE, "items": [_SLICE]}).encode()
            self.send_response(201 if self.command == "POST" else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    with serving(Handler) as url:
        yield url, asked


def _kubeconfig(path: Path, url: str) -> Path:
    return write_kubeconfig(path, url)


def used_permissions(workdir: Path) -> dict[str, set[Permission]]:
    """Per caller (each :class:`Kube` method, and ``plugin withdraw``), the permissions its requests need."""
    missing = public(Kube) - set(CALLS) - {"aclose"}
    assert not missing, f"tests/plugin/kubelet/api_calls.py does not know how to call Kube.{sorted(missing)}"
    assert public(NodeApi) == public(Kube), "NodeApi has calls the Kube protocol does not list"
    out: dict[str, set[Permission]] = {}
    with recording_api() as (url, asked):
        kubeconfig = _kubeconfig(workdir / "kubeconfig", url)
        api = NodeApi(kubeconfig)
        try:
            for name, call in CALLS.items():
                del asked[:]
                call(api, asked)
                out[name] = {permission(method, path) for method, path in asked}
        finally:
            api.client.close()
        del asked[:]
        argv = ["plugin", "withdraw", "--node-name", NODE, "--driver-name", DRIVER, "--kubeconfig", str(kubeconfig)]
        assert main(argv) == 0
        out["plugin withdraw"] = {permission(method, path) for method, path in asked}
    return out


def granted(rules: list[dict[str, Any]]) -> set[Permission]:
    """The permissions a ClusterRole's ``rules`` grant, one by one."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for verb in rule.get("verbs") or []
    }


_DIRECTIVE_LINE = re.compile(r"^\s*\{\{-?.*?-?\}\}\s*$", re.MULTILINE)
_DIRECTIVE = re.compile(r"\{\{-?.*?-?\}\}")
TEMPLATED = "TEMPLATED"


def render_static(template: str) -> list[dict[str, Any]]:
    """A Helm template whose directives only fill in names and labels, as YAML documents: lines that are a directive
    alone are dropped, other directives become ``TEMPLATED`` (no helm binary needed)."""
    text = _DIRECTIVE.sub(TEMPLATED, _DIRECTIVE_LINE.sub("", template))
    return [doc for doc in yaml.safe_load_all(text) if doc]
