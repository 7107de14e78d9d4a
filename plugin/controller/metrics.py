"""Prometheus metrics in the text exposition format (0.0.4), written by hand, on a small HTTP endpoint."""

from __future__ import annotations

import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "gpupolicy_controller"


class Metrics:
    """Counters and gauges the controller updates; ``render()`` is the exposition text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pending_pods = 0
        self.leader = 0
        self.placed_pods = 0
        self.placed_claims = 0
        self.conflicts = 0
        self.solves = 0
        self.solve_seconds_sum = 0.0
        self.last_solve_seconds = 0.0
        self.unplaced: dict[str, int] = defaultdict(int)  # reason code -> pods now unplaced for it

    def solved(self, seconds: float) -> None:
        with self._lock:
            self.solves += 1
            self.solve_seconds_sum += seconds
            self.last_solve_seconds = seconds

    def update(self, **values: int) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)

    def add(self, **values: int) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, getattr(self, name) + value)

    def set_unplaced(self, by_reason: dict[str, int]) -> None:
        with self._lock:
            self.unplaced = defaultdict(int, by_reason)

    def render(self) -> str:
        with self._lock:
            lines: list[str] = []
            _metric(lines, "pending_pods", "gauge", "Gated pods waiting for placement.", self.pending_pods)
            _metric(lines, "is_leader", "gauge", "1 while this replica holds the leader Lease.", self.leader)
            _metric(lines, "placed_pods_total", "counter", "Pods whose claims were allocated.", self.placed_pods)
            _metric(lines, "placed_claims_total", "counter", "Claims allocated.", self.placed_claims)
            _metric(lines, "conflicts_total", "counter", "Write conflicts retried.", self.conflicts)
            lines.append(f"# HELP {PREFIX}_solve_seconds Time spent in the solver per batch.")
            lines.append(f"# TYPE {PREFIX}_solve_seconds summary")
            lines.append(f"{PREFIX}_solve_seconds_sum {self.solve_seconds_sum:.6f}")
            lines.append(f"{PREFIX}_solve_seconds_count {self.solves}")
            _metric(lines, "last_solve_seconds", "gauge", "The last batch's solve time.", self.last_solve_seconds)
            lines.append(f"# HELP {PREFIX}_unplaced_pods Gated pods the last solve could not place, by reason.")
            lines.append(f"# TYPE {PREFIX}_unplaced_pods gauge")
            for reason, count in sorted(self.unplaced.items()):
                lines.append(f'{PREFIX}_unplaced_pods{{reason="{_escape(reason)}"}} {count}')
            return "\n".join(lines) + "\n"


def _metric(lines: list[str], name: str, kind: str, help_text: str, value: float) -> None:
    lines.append(f"# HELP {PREFIX}_{name} {help_text}")
    lines.append(f"# TYPE {PREFIX}_{name} {kind}")
    lines.append(f"{PREFIX}_{name} {value:g}" if isinstance(value, float) else f"{PREFIX}_{name} {value}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def serve(metrics: Metrics, host: str, port: int) -> ThreadingHTTPServer:
    """``/metrics`` (and ``/healthz``) on a daemon thread; returns the server (its ``server_port`` when 0)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, kind = metrics.render().encode(), "text/plain; version=0.0.4; charset=utf-8"
            elif self.path == "/healthz":
                body, kind = b"ok\n", "text/plain"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
