"""What the controller's and the plugin's ``/metrics`` endpoints share: a registry of their own with the process
metrics in it (``process_*``, ``python_info``, ``python_gc_*``), and a small HTTP server for it on a daemon thread.

Each program's metrics live in an instance (``controller.metrics.Metrics``, ``kubelet.metrics.PluginMetrics``) on
its own :class:`CollectorRegistry`, never on ``prometheus_client``'s global one, so tests can make as many as
they like. The server answers ``/metrics`` (the Prometheus text format, or OpenMetrics when asked for it) and
``/healthz``; other paths are 404.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def new_registry(*, process: bool = True) -> CollectorRegistry:
    """A registry of one's own; with ``process``, the process, platform and garbage-collector collectors in it."""
    registry = CollectorRegistry(auto_describe=True)
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


class GaugeSnapshot(Collector):
    """A gauge whose labelled values are replaced as a whole (``set``), so that a label value that is gone
    disappears and a scrape never sees half of one update and half of the next."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str], registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.labels = name, documentation, tuple(labels)
        self.values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def set(self, values: Mapping[tuple[str, ...], float]) -> None:
        if any(len(key) != len(self.labels) for key in values):
            raise ValueError(f"{self.name}: every value needs the labels {', '.join(self.labels)}")
        self.values = dict(values)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, value in sorted(self.values.items()):
            family.add_metric(key, value)
        yield family


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6-host]:PORT`` or ``:PORT`` (127.0.0.1); port 0 picks a free one."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"a metrics address is HOST:PORT, not {address!r}")
    return host.removeprefix("[").removesuffix("]") or "127.0.0.1", int(port)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class MetricsServer:
    """``/metrics`` of ``registry`` and ``/healthz`` on ``address``, served on a daemon thread until ``close``."""

    def __init__(self, registry: CollectorRegistry, address: str) -> None:
        host, port = parse_address(address)
        metrics = make_wsgi_app(registry)

        def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/metrics":
                return metrics(environ, start_response)  # type: ignore[no-any-return]
            if path == "/healthz":
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"ok\n"]
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]

        server_class = _Server6 if ":" in host else _Server
        self._httpd = make_server(host, port, app, server_class, handler_class=_Quiet)
        self.host, self.port = host, int(self._httpd.server_port)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
