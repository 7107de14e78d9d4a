"""From NVML to the shared model: ``gpupolicy.policy.gpu.GpuInfo`` per GPU, and the node's device inventory.

The inventory maps each published device name back to what it is on this node (full GPU or MIG
placement, created at prepare or pre-existing, shareable or not), using the shared builder so
that names and sharing match the ResourceSlices exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from gpupolicy.plugin.kubelet.nvml.types import Gpu
from gpupolicy.policy import catalog
from gpupolicy.policy.builder import DEFAULT_DRIVER, PublishFor, gpu_view
from gpupolicy.policy.builder_devices import gpu_devices
from gpupolicy.policy.gpu import EXCLUSIVE, GpuInfo, GpuTaint, MigInstance, Mode, Publish

log = logging.getLogger(__name__)


def gpu_info(gpu: Gpu, taints: tuple[GpuTaint, ...] = ()) -> GpuInfo | None:
    """The shared description of one NVML GPU; None for a model the catalog does not know."""
    model = catalog.find_model(gpu.model) or catalog.model_for_product(gpu.product_name)
    if model is None:
        log.warning("GPU %s (%s) is not a catalog model; not published", gpu.uuid, gpu.product_name)
        return None
    return GpuInfo(
        model=model.name,
        minor=gpu.minor,
        uuid=gpu.uuid,
        pci_bus_id=gpu.pci_bus_id,
        driver_version=gpu.driver_version,
        cuda_driver_version=gpu.cuda_driver_version,
        mig_enabled=gpu.mig_enabled,
        mig_instances=tuple(
            MigInstance(m.profile, m.start, m.uuid, m.gi_id, m.ci_id)
            for m in sorted(gpu.mig_devices, key=lambda m: m.start)
        ),
        product_name=gpu.product_name,
        pcie_root=gpu.pcie_root or None,
        memory_bytes=gpu.memory_bytes,
        taints=taints,
    )


@dataclass(frozen=True)
class NodeDevice:
    """A published device and what preparing it means on this node."""

    name: str
    gpu_uuid: str
    gpu_minor: int
    mig: bool = False
    profile: str = ""
    start: int = 0
    size: int = 0
    dynamic: bool = False
    """A MIG device created at prepare and destroyed at unprepare (dynamic MIG)."""
    shareable: bool = False
    mode: Mode = Mode.EXCLUSIVE
    memory_slots: int = 0
    """Memory slots of the parent GPU (0 without MIG)."""
    publish: Publish = EXCLUSIVE
    """The policy's decision for the parent GPU (time-slice interval, MPS defaults, shares)."""

    def exclusive_keys(self) -> tuple[str, ...]:
        """What preparing this device holds: a full GPU holds every memory slot, a MIG device its own."""
        if self.shareable:
            return ()
        if self.mig:
            return tuple(f"slot:{self.gpu_uuid}:{i}" for i in range(self.start, self.start + self.size))
        return (f"gpu:{self.gpu_uuid}",) + tuple(f"slot:{self.gpu_uuid}:{i}" for i in range(self.memory_slots))


@dataclass
class Inventory:
    """GPUs as published, and their devices by name."""

    gpus: list[GpuInfo] = field(default_factory=list)
    publish: dict[str, Publish] = field(default_factory=dict)
    devices: dict[str, NodeDevice] = field(default_factory=dict)
    dynamic_gpus: frozenset[str] = frozenset()


def _start_from_name(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def build_inventory(
    gpus: list[Gpu],
    publish_for: PublishFor | None = None,
    taints: Mapping[str, tuple[GpuTaint, ...]] | None = None,
    driver: str = DEFAULT_DRIVER,
) -> Inventory:
    inventory = Inventory()
    dynamic = set()
    for nvml_gpu in gpus:
        info = gpu_info(nvml_gpu, (taints or {}).get(nvml_gpu.uuid, ()))
        if info is None:
            continue
        publish = publish_for(info, gpu_view(info, driver)) if publish_for else EXCLUSIVE
        inventory.gpus.append(info)
        inventory.publish[info.uuid] = publish
        wires, counters = gpu_devices(info, publish)
        if counters is not None:
            dynamic.add(info.uuid)
        slots = info.spec.mig_memory_slots if info.mig_enabled or counters is not None else 0
        for wire in wires:
            name = wire["name"]
            attrs = wire["attributes"]
            if attrs["type"]["string"] == "mig":
                profile = info.spec.profile(attrs["profile"]["string"])
                device = NodeDevice(
                    name=name,
                    gpu_uuid=info.uuid,
                    gpu_minor=info.minor,
                    mig=True,
                    profile=profile.name,
                    start=_start_from_name(name),
                    size=profile.memory_slots,
                    dynamic=counters is not None,
                    memory_slots=slots,
                )
            else:
                device = NodeDevice(
                    name=name,
                    gpu_uuid=info.uuid,
                    gpu_minor=info.minor,
                    shareable=bool(wire.get("allowMultipleAllocations")),
                    mode=publish.mode,
                    memory_slots=slots,
                    publish=publish,
                )
            inventory.devices[name] = device
    inventory.dynamic_gpus = frozenset(dynamic)
    return inventory
