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
        "evictions_refused",
        "holds",
        "is_leader",
        "last_solve_seconds",
        "pending_pods",
        "placed_claims",
        "placed_pods",
        "preemption_seconds",
        "preemptions",
        "registry",
        "solve_seconds",
        "unplaced",
        "victims",
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
        self.preemptions = Counter(
            f"{PREFIX}_preemptions", "Units that evicted pods to be placed (preemption or defragmentation).", registry=r
        )
        self.victims = Counter(
            f"{PREFIX}_victims", "Pods evicted, by reason (preempted, moved).", ["reason"], registry=r
        )
        self.evictions_refused = Counter(
            f"{PREFIX}_evictions_refused",
            "Plans dropped because an eviction was refused (dry run or real).",
            registry=r,
        )
        self.preemption_seconds = Summary(
            f"{PREFIX}_preemption_seconds", "From a unit's first eviction to the unit placed.", registry=r
        )
        self.holds = Gauge(f"{PREFIX}_holds", "Units holding devices until evicted pods release them.", registry=r)

    def solved(self, seconds: float) -> None:
        self.solve_seconds.observe(seconds)
        self.last_solve_seconds.set(seconds)

    def render(self) -> str:
        """The exposition text, as ``/metrics`` serves it by default."""
        return generate_latest(self.registry).decode()
