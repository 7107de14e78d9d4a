"""The controller's Prometheus metrics (``prometheus_client``, on a registry of the instance's own).

Each metric is a typed attribute (``metrics.pending_pods.set(3)``, ``metrics.placed_pods.inc(2)``), so a misspelled
name is an ``AttributeError`` at run time and a mypy error before that; ``__slots__`` makes assigning to a
misspelled one fail too.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Summary, generate_latest

from gpupolicy.plugin.metrics import GaugeSnapshot, new_registry

PREFIX = "gpupolicy_controller"


class Metrics:
    """What the controller exposes on ``/metrics``, besides the process metrics."""

    __slots__ = (
        "conflicts",
        "is_leader",
        "last_solve_seconds",
        "pending_pods",
        "placed_claims",
        "placed_pods",
        "registry",
        "solve_seconds",
        "unplaced",
    )

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        r = self.registry
        self.pending_pods = Gauge(f"{PREFIX}_pending_pods", "Gated pods waiting for placement.", registry=r)
        self.is_leader = Gauge(f"{PREFIX}_is_leader", "1 while this replica holds the leader Lease.", registry=r)
        self.placed_pods = Counter(f"{PREFIX}_placed_pods", "Pods whose claims were allocated.", registry=r)
        self.placed_claims = Counter(f"{PREFIX}_placed_claims", "Claims allocated.", registry=r)
        self.conflicts = Counter(f"{PREFIX}_conflicts", "Write conflicts retried.", registry=r)
        self.solve_seconds = Summary(f"{PREFIX}_solve_seconds", "Time spent in the solver per batch.", registry=r)
        self.last_solve_seconds = Gauge(f"{PREFIX}_last_solve_seconds", "The last batch's solve time.", registry=r)
        self.unplaced = GaugeSnapshot(  # replaced after each pass: a reason no pod waits for any more disappears
            f"{PREFIX}_unplaced_pods", "Gated pods the last solve could not place, by reason.", ["reason"], r
        )

    def solved(self, seconds: float) -> None:
        self.solve_seconds.observe(seconds)
        self.last_solve_seconds.set(seconds)

    def render(self) -> str:
        """The exposition text, as ``/metrics`` serves it by default."""
        return generate_latest(self.registry).decode()
