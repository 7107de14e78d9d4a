"""Health state: events to taints and stream snapshots, recovery, no-op duplicates."""

from __future__ import annotations

import threading

from gpupolicy.plugin.kubelet.health import HealthState
from gpupolicy.plugin.kubelet.nvml.types import EventKind, HealthEvent
from gpupolicy.policy.gpu import GpuTaint

DRIVER = "gpu.gpupolicy.dev"


def test_xid_and_lost_become_taints_and_recover() -> None:
    state = HealthState(DRIVER, "node", clock=lambda: 100.0)
    state.set_devices([("gpu-0", "G0"), ("gpu-1", "G1"), ("gpu-1-mig-1g5gb-19-0", "G1")])
    changes: list[int] = []
    state.on_change(lambda: changes.append(1))
    state.apply(HealthEvent("G1", EventKind.XID, 48, "Xid 48"))
    assert state.taints() == {"G1": (GpuTaint(f"{DRIVER}/xid", "48", "NoSchedule"),)}
    assert [(d.device, d.healthy, d.message) for d in state.snapshot()] == [
        ("gpu-0", True, ""),
        ("gpu-1", False, "Xid 48"),
        ("gpu-1-mig-1g5gb-19-0", False, "Xid 48"),
    ]
    state.apply(HealthEvent("G1", EventKind.XID, 48, "Xid 48"))  # same state again: no change
    state.apply(HealthEvent("G0", EventKind.RECOVERED))  # healthy already: no change
    assert len(changes) == 1
    state.apply(HealthEvent("G1", EventKind.GPU_LOST, 0, "GPU has fallen off the bus"))
    assert state.taints()["G1"] == (GpuTaint(f"{DRIVER}/gpu-lost", "", "NoExecute"),)
    state.apply(HealthEvent("G1", EventKind.RECOVERED))
    assert state.taints() == {} and all(d.healthy for d in state.snapshot())
    assert len(changes) == 3


def test_watch_yields_now_and_on_change() -> None:
    state = HealthState(DRIVER, "node")
    state.set_devices([("gpu-0", "G0")])
    stop = threading.Event()
    stream = state.watch(stop.is_set, poll_s=0.05)
    assert next(stream)[0].healthy
    threading.Timer(0.1, lambda: state.apply(HealthEvent("G0", EventKind.XID, 79))).start()
    assert not next(stream)[0].healthy
    stop.set()
    assert list(stream) == []
