"""An API-server stand-in over HTTP for tests and demos: the few ``resource.k8s.io/v1`` and
``/api/v1/nodes`` paths the plugin uses, backed by ``FakeKube``; lists of nodes and slices with field selectors,
and watches of them (``watch=true``: the changes after ``resourceVersion``, one JSON line each, chunked, until
``timeoutSeconds`` or the server stops).

    python -m tests.fakes.kube_stub --port 8081 --kubeconfig-out /tmp/kc.yaml --node node-a [claims.yaml ...]

serves until interrupted; claims in the YAML files are loaded (with their status) as-is.
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from gpupolicy.plugin.kube import ApiError, Obj
from tests.fakes.kube import FakeKube
from tests.fakes.kubeconfig import write_kubeconfig

_API = "/apis/resource.k8s.io/v1"
_ROUTES = [
    ("GET", re.compile(r"^/api/v1/nodes/(?P<name>[^/]+)$"), "node"),
    ("GET", re.compile(r"^/api/v1/nodes$"), "nodes"),
    ("GET", re.compile(rf"^{_API}/namespaces/(?P<ns>[^/]+)/resourceclaims/(?P<name>[^/]+)$"), "claim"),
    ("GET", re.compile(rf"^{_API}/resourceclaims$"), "claims"),
    ("GET", re.compile(rf"^{_API}/resourceslices$"), "slices"),
    ("POST", re.compile(rf"^{_API}/resourceslices$"), "create"),
    ("PUT", re.compile(rf"^{_API}/resourceslices/(?P<name>[^/]+)$"), "replace"),
    ("DELETE", re.compile(rf"^{_API}/resourceslices/(?P<name>[^/]+)$"), "delete"),
    ("POST", re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/events$"), "event"),
]
_STATUS = {"not_found": 404, "conflict": 409, "unreachable": 503}
_REASONS = {403: "Forbidden", 404: "NotFound", 409: "Conflict", 410: "Expired", 503: "ServiceUnavailable"}


def _selector(query: dict[str, list[str]]) -> dict[str, str]:
    text = (query.get("fieldSelector") or [""])[0]
    return dict(part.split("=", 1) for part in text.split(",") if "=" in part)


def _matcher(action: str, fields: dict[str, str]) -> tuple[str, Callable[[Obj], bool]]:
    """The resource a list or watch ``action`` reads, and which of its objects the field selector selects."""
    if action == "nodes":
        return "nodes", lambda obj: fields.get("metadata.name") in (None, obj["metadata"]["name"])
    spec = {"spec.driver": "driver", "spec.nodeName": "nodeName"}
    return "resourceslices", lambda obj: all(obj["spec"].get(spec[k]) == v for k, v in fields.items() if k in spec)


def _status(code: int, message: str) -> Obj:
    reason = _REASONS.get(code, "InternalError")
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class _Handler(BaseHTTPRequestHandler):
    kube: FakeKube
    refuse: dict[str, int]
    stopping: threading.Event
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API server
    # TCP_NODELAY, as Go's net/http (the real API server) sets it: with Nagle on, the body written
    # after the headers waits for the client's delayed ACK, i.e. ~40 ms on every response.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, code: int, body: Any) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _handle(self, method: str) -> None:
        url = urlparse(self.path)
        for verb, pattern, action in _ROUTES:
            match = pattern.match(url.path)
            if verb == method and match:
                query = parse_qs(url.query)
                watch = query.get("watch") == ["true"]
                refused = self.refuse.get(f"watch {action}" if watch else action)
                if refused:
                    self._send(refused, _status(refused, f"{method} {url.path} refused by the test"))
                    return
                if watch:
                    self._stream(action, query)
                    return
                try:
                    code, body = self._dispatch(action, match.groupdict(), query)
                except ApiError as exc:
                    code = _STATUS.get(exc.code, 500)
                    body = _status(code, str(exc))
                self._send(code, body)
                return
        self._send(
            404, {"kind": "Status", "status": "Failure", "message": f"no route {method} {url.path}", "code": 404}
        )

    def _dispatch(self, action: str, params: dict[str, str], query: dict[str, list[str]]) -> tuple[int, Any]:
        kube = self.kube
        if action == "node":
            return 200, kube.get_node(params["name"])
        if action == "claim":  # the hot path of a prepare benchmark: serialised without a deep copy first
            return 200, kube.claim_json(params["ns"], params["name"])
        if action == "claims":
            return 200, {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimList", "items": kube.list_claims()}
        if action == "nodes":
            name = _selector(query).get("metadata.name")
            items, version = kube.at_version(lambda: kube.list_nodes(name))
            return 200, {
                "apiVersion": "v1",
                "kind": "NodeList",
                "metadata": {"resourceVersion": version},
                "items": items,
            }
        if action == "slices":
            fields = _selector(query)
            items, version = kube.at_version(
                lambda: kube.list_slices(fields.get("spec.driver"), fields.get("spec.nodeName"))
            )
            meta = {"resourceVersion": version}
            return 200, {
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceSliceList",
                "metadata": meta,
                "items": items,
            }
        if action == "create":
            return 201, kube.create_slice(self._body())
        if action == "replace":
            return 200, kube.replace_slice(self._body())
        if action == "event":
            kube.create_event(self._body())
            return 201, kube.events[-1]
        kube.delete_slice(params["name"])
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}

    def _stream(self, action: str, query: dict[str, list[str]]) -> None:
        """A watch: the changes after the request's resourceVersion that its field selector selects, one JSON line
        each (a chunk of its own), until ``timeoutSeconds``, the server stops or the client leaves."""
        resource, match = _matcher(action, _selector(query))
        since = int((query.get("resourceVersion") or ["0"])[0] or 0)
        deadline = time.monotonic() + float((query.get("timeoutSeconds") or ["60"])[0])
        events: queue.Queue[tuple[str, Obj]] = queue.Queue()

        def put(res: str, type_: str, obj: Obj) -> None:
            if res == resource and match(obj):
                events.put((type_, obj))

        unsubscribe = self.kube.subscribe(put, since)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while time.monotonic() < deadline and not self.stopping.is_set():
                try:
                    type_, obj = events.get(timeout=0.05)
                except queue.Empty:
                    continue
                line = json.dumps({"type": type_, "object": obj}).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client left
            self.close_connection = True
        finally:
            unsubscribe()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class StubApiServer:
    """``FakeKube`` served on 127.0.0.1:<port> (0 = any free port) in a background thread.

    ``refuse`` maps a route (``node``, ``nodes``, ``slices``, ``create`` …, or ``watch nodes``, ``watch slices``) to
    the HTTP status its requests are answered with, e.g. ``{"watch slices": 403}`` as when RBAC lacks ``watch``.
    """

    def __init__(self, kube: FakeKube | None = None, port: int = 0) -> None:
        self.kube = kube or FakeKube()
        self.refuse: dict[str, int] = {}
        self._stopping = threading.Event()
        handler = type("Handler", (_Handler,), {"kube": self.kube, "refuse": self.refuse, "stopping": self._stopping})
        server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 512})
        self._httpd = server_class(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="stub-apiserver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StubApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends the watches
        self._httpd.shutdown()
        self._httpd.server_close()

    def write_kubeconfig(self, path: Path) -> Path:
        return write_kubeconfig(path, self.url, token="stub")


def main() -> None:
    import yaml

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--kubeconfig-out", type=Path, required=True)
    parser.add_argument("--node", action="append", default=[])
    parser.add_argument("claims", nargs="*", type=Path)
    args = parser.parse_args()
    server = StubApiServer(port=args.port)
    for node in args.node:
        server.kube.put_node(node)
    for path in args.claims:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "ResourceClaim":
                server.kube.put_claim(doc)
    server.write_kubeconfig(args.kubeconfig_out)
    print(f"serving {server.url}; kubeconfig in {args.kubeconfig_out}", flush=True)
    server._httpd.serve_forever()


if __name__ == "__main__":
    main()
