"""Device health: NVML events (XIDs, a GPU falling off the bus) become taints on the GPU's devices
and UNHEALTHY entries in the health stream; a recovery event clears both.

``HealthState`` is the single source: the publisher reads ``taints()`` into the ResourceSlices and
the gRPC ``NodeWatchResources`` stream sends ``snapshot()`` on every change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gpupolicy.plugin.kubelet.nvml.types import EventKind, HealthEvent, Nvml
from gpupolicy.policy.gpu import GpuTaint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceHealth:
    pool: str
    device: str
    healthy: bool
    since: float
    message: str = ""


@dataclass(frozen=True)
class _GpuHealth:
    healthy: bool
    since: float
    message: str = ""
    taint: GpuTaint | None = None


class HealthState:
    def __init__(self, driver: str, pool: str, clock: Callable[[], float] = time.time) -> None:
        self._driver = driver
        self._pool = pool
        self._clock = clock
        self._cond = threading.Condition()
        self._gpus: dict[str, _GpuHealth] = {}
        self._devices: list[tuple[str, str]] = []  # (device name, gpu uuid)
        self._version = 0
        self._listeners: list[Callable[[], None]] = []
        self._started = clock()

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def set_devices(self, devices: list[tuple[str, str]]) -> None:
        with self._cond:
            if devices != self._devices:
                self._devices = list(devices)
                self._bump()

    def _bump(self) -> None:
        self._version += 1
        self._cond.notify_all()

    def apply(self, event: HealthEvent) -> None:
        now = self._clock()
        if event.kind is EventKind.RECOVERED:
            state = _GpuHealth(True, now, "recovered")
        elif event.kind is EventKind.GPU_LOST:
            taint = GpuTaint(f"{self._driver}/gpu-lost", "", "NoExecute")
            state = _GpuHealth(False, now, event.message or "GPU lost", taint)
        else:
            taint = GpuTaint(f"{self._driver}/xid", str(event.xid), "NoSchedule")
            state = _GpuHealth(False, now, event.message or f"Xid {event.xid}", taint)
        with self._cond:
            previous = self._gpus.get(event.gpu_uuid)
            if previous is not None and (previous.healthy, previous.taint) == (state.healthy, state.taint):
                return
            if previous is None and state.healthy:
                return
            self._gpus[event.gpu_uuid] = state
            self._bump()
        log.warning("GPU %s: %s (%s)", event.gpu_uuid, "healthy" if state.healthy else "unhealthy", state.message)
        for listener in self._listeners:
            listener()

    def taints(self) -> dict[str, tuple[GpuTaint, ...]]:
        with self._cond:
            return {uuid: (h.taint,) for uuid, h in self._gpus.items() if h.taint is not None}

    def snapshot(self) -> list[DeviceHealth]:
        with self._cond:
            out = []
            for device, gpu in self._devices:
                h = self._gpus.get(gpu)
                if h is None:
                    out.append(DeviceHealth(self._pool, device, True, self._started))
                else:
                    out.append(DeviceHealth(self._pool, device, h.healthy, h.since, h.message))
            return out

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def watch(self, stopped: Callable[[], bool], poll_s: float = 0.5) -> Iterator[list[DeviceHealth]]:
        """The full device list now and after every change, until ``stopped()``."""
        seen = -1
        while not stopped():
            with self._cond:
                if self._version == seen:
                    self._cond.wait(poll_s)
                    if self._version == seen:
                        continue
                seen = self._version
            yield self.snapshot()


class HealthMonitor:
    """A thread feeding NVML events into ``state``."""

    def __init__(self, nvml: Nvml, state: HealthState) -> None:
        self._nvml = nvml
        self._state = state
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                events = self._nvml.wait_events(0.2)
            except Exception:
                log.exception("waiting for NVML events failed")
                self._stop.wait(1.0)
                continue
            for event in events:
                self._state.apply(event)
