"""Which sharing a prepared claim sets up: from the claim's or class's opaque config, else the policy.

- An exclusive full GPU under a policy's ``timeSlicing``/``mps`` rule (or with a ``GpuConfig``
  sharing) is shared by the pods of the one claim: time-slice interval, or an MPS control daemon
  of the claim's own with its limits.
- A shared GPU (``allowMultipleAllocations``, a policy with ``replicas``/``maxClients``) is shared by
  several claims: its time-slice setting or MPS daemon belongs to the GPU, set up by the first claim
  and undone by the last. A claim only sets its MPS *client* limits (thread percentage, pinned
  memory; by default its share of ``shares`` and the memory it consumed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpupolicy.plugin.kubelet.checkpoint import SharingOp
from gpupolicy.plugin.kubelet.config import DeviceConfig
from gpupolicy.plugin.kubelet.discovery import NodeDevice
from gpupolicy.policy.gpu import Mode
from gpupolicy.policy.quantity import Quantity, QuantityError

_POLICY_STRATEGY = {Mode.TIME_SLICING: "TimeSlicing", Mode.MPS: "MPS"}


class SharingError(Exception):
    pass


@dataclass(frozen=True)
class Item:
    device: NodeDevice
    config: DeviceConfig | None
    result: dict[str, Any]
    admin: bool = False


def mib(value: str | int | None) -> str:
    """A memory limit as MPS takes it (``8192M``); accepts a Kubernetes quantity or bytes."""
    if value is None or value == "":
        return ""
    try:
        amount = value if isinstance(value, int) else Quantity.parse(value).as_integer()
    except QuantityError:
        return ""
    return f"{max(1, amount // 2**20)}M"


def _consumed_share(item: Item) -> tuple[int | None, str]:
    """Client limits from the capacity the claim consumed on a shared GPU."""
    consumed = item.result.get("consumedCapacity") or {}
    percent = None
    total = item.device.publish.shares
    if "shares" in consumed and total:
        try:
            percent = max(1, min(100, round(100 * Quantity.parse(consumed["shares"]).as_integer() / total)))
        except QuantityError:
            percent = None
    return percent, mib(consumed.get("memory"))


def _shared(item: Item, uid_dir: Path) -> SharingOp | None:
    device, publish = item.device, item.device.publish
    strategy = _POLICY_STRATEGY.get(device.mode, "")
    sharing = item.config.sharing if item.config else None
    if sharing is not None and sharing.strategy != strategy:
        raise SharingError(
            f"device {device.name} is shared with other claims as {strategy or device.mode}; "
            f"a claim cannot switch it to {sharing.strategy}"
        )
    if strategy == "TimeSlicing":
        return SharingOp("TimeSlicing", (device.gpu_uuid,), interval=publish.time_slice_interval, shared=True)
    if strategy != "MPS":
        return None
    percent, pinned = _consumed_share(item)
    mps = sharing.mps_config if sharing else None
    if mps is not None and mps.default_active_thread_percentage is not None:
        percent = mps.default_active_thread_percentage
    if mps is not None and mps.default_pinned_device_memory_limit:
        pinned = mib(mps.default_pinned_device_memory_limit)
    if percent is None:
        percent = publish.mps_active_thread_percentage
    pinned = pinned or mib(publish.mps_pinned_memory_bytes)
    return SharingOp(
        "MPS",
        (device.name,),
        mps_dir=str(uid_dir.parent / f"gpu-{device.gpu_uuid}"),
        active_thread_percentage=percent,
        pinned_memory_limit=pinned,
        shared=True,
    )


def plan(uid_dir: Path, items: list[Item]) -> tuple[SharingOp, ...]:
    """The sharing operations of one claim; ``uid_dir`` is ``<state-dir>/mps/<claimUID>``."""
    ops: list[SharingOp] = []
    mps_devices: list[str] = []
    limits: tuple[int | None, str] = (None, "")
    for item in items:
        if item.admin:
            continue
        if item.device.shareable:
            op = _shared(item, uid_dir)
            if op is not None:
                ops.append(op)
            continue
        sharing = item.config.sharing if item.config else None
        publish = item.device.publish
        from_policy = sharing is None and not item.device.mig
        strategy = sharing.strategy if sharing else _POLICY_STRATEGY.get(item.device.mode, "") if from_policy else ""
        if strategy == "TimeSlicing":
            interval = publish.time_slice_interval if from_policy else "Default"
            if sharing and sharing.time_slicing_config:
                interval = sharing.time_slicing_config.interval
            ops.append(SharingOp("TimeSlicing", (item.device.gpu_uuid,), interval=interval))
        elif strategy == "MPS":
            mps_devices.append(item.device.name)
            mps = sharing.mps_config if sharing else None
            if mps is not None:
                limits = (mps.default_active_thread_percentage, mib(mps.default_pinned_device_memory_limit))
            elif from_policy:
                limits = (publish.mps_active_thread_percentage, mib(publish.mps_pinned_memory_bytes))
    if mps_devices:
        ops.append(
            SharingOp(
                "MPS",
                tuple(mps_devices),
                mps_dir=str(uid_dir),
                active_thread_percentage=limits[0],
                pinned_memory_limit=limits[1],
            )
        )
    return tuple(ops)
