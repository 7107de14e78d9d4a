"""The kubelet plugin's Prometheus metrics (``prometheus_client``, on a registry of the instance's own).

Latencies are observed once per gRPC call, on the event loop: ``Histogram.observe`` is a few additions under an
uncontended lock, no I/O. Errors are counted per claim by stable code (:class:`ErrorCode`). As in the controller,
each metric is a typed attribute and ``__slots__`` turns a misspelled name into an ``AttributeError``.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gpupolicy.plugin.metrics import GaugeSnapshot, new_registry

PREFIX = "gpupolicy_plugin"
# 1 ms to 10 s; 20 ms is the prepare p99 target.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ErrorCode(StrEnum):
    """Why a claim's prepare or unprepare failed: the ``code`` label of ``gpupolicy_plugin_errors_total``."""

    INVALID_CLAIM_REF = "invalid_claim_ref"  # a namespace, name or UID the API server never makes (refused unread)
    CLAIM_UNREADABLE = "claim_unreadable"  # the ResourceClaim could not be read from the API server
    CLAIM_REPLACED = "claim_replaced"  # its UID is not the one kubelet asked for
    NOT_ALLOCATED = "not_allocated"
    WRONG_POOL = "wrong_pool"  # a device of this driver from another node's pool
    UNKNOWN_DEVICE = "unknown_device"  # a device this node does not publish
    INVALID_CONFIG = "invalid_config"  # an opaque config of this driver that does not validate
    INVALID_SHARING = "invalid_sharing"
    ADMIN_DEVICE_MISSING = "admin_device_missing"  # adminAccess to a MIG device that does not exist
    OVERLAPPING_DEVICES = "overlapping_devices"
    DEVICE_IN_USE = "device_in_use"  # prepared for another claim
    SETUP_FAILED = "setup_failed"  # MIG, sharing or CDI set-up failed (rolled back)
    CHECKPOINT_FAILED = "checkpoint_failed"
    CHECKPOINT_REBUILDING = "checkpoint_rebuilding"  # the records are being rebuilt from the API server: retried
    TEARDOWN_FAILED = "teardown_failed"  # unprepare: kubelet retries
    INTERNAL = "internal"  # an unexpected exception (logged with its traceback)


class PluginMetrics:
    """What the plugin exposes on ``/metrics``, besides the process metrics."""

    __slots__ = ("errors", "prepare_seconds", "prepared_claims", "published_devices", "registry", "unprepare_seconds")

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        r = self.registry
        self.prepare_seconds = Histogram(
            f"{PREFIX}_prepare_duration_seconds",
            "NodePrepareResources calls, from gRPC handing the call to the handler to the response.",
            buckets=BUCKETS,
            registry=r,
        )
        self.unprepare_seconds = Histogram(
            f"{PREFIX}_unprepare_duration_seconds",
            "NodeUnprepareResources calls, from gRPC handing the call to the handler to the response.",
            buckets=BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            f"{PREFIX}_errors",
            "Claims whose prepare or unprepare failed, by operation and stable code.",
            ["operation", "code"],
            registry=r,
        )
        self.published_devices = GaugeSnapshot(
            f"{PREFIX}_published_devices",
            "Devices in this node's ResourceSlices as last written or found up to date, by pool and type.",
            ["pool", "type"],
            r,
        )
        self.prepared_claims = Gauge(f"{PREFIX}_prepared_claims", "Claims prepared on this node now.", registry=r)

    def failed(self, operation: str, code: ErrorCode) -> None:
        self.errors.labels(operation=operation, code=code.value).inc()

    def published(self, slices: Iterable[dict[str, Any]]) -> None:
        """Count the devices of ``slices`` (ResourceSlices as the API server holds them) by pool and type."""
        tally: Tally[tuple[str, ...]] = Tally()
        for obj in slices:
            pool = str(obj["spec"]["pool"]["name"])
            for device in obj["spec"].get("devices") or []:
                kind = ((device.get("attributes") or {}).get("type") or {}).get("string") or "unknown"
                tally[pool, str(kind)] += 1
        self.published_devices.set(tally)

    def render(self) -> str:
        return generate_latest(self.registry).decode()
