"""What the plugin needs from NVML, as plain values and one protocol both backends implement."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


class NvmlError(Exception):
    """An NVML call failed; ``code`` is a stable snake_case reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class MigProfile:
    """A GPU-instance profile of one GPU model, with its allowed placement starts."""

    name: str
    gi_profile_id: int
    compute_slices: int
    memory_slices: int
    memory_mib: int
    multiprocessors: int
    copy_engines: int
    decoders: int
    encoders: int
    jpeg_engines: int
    ofa_engines: int
    max_instances: int
    starts: tuple[int, ...]

    @property
    def media_extension(self) -> bool:
        return self.name.endswith("+me") or "+me." in self.name


@dataclass(frozen=True)
class MigDevice:
    """An existing MIG device: GPU instance ``gi_id`` with compute instance ``ci_id``."""

    uuid: str
    parent_uuid: str
    parent_minor: int
    profile: str
    gi_profile_id: int
    gi_id: int
    ci_id: int
    start: int
    size: int
    memory_bytes: int
    multiprocessors: int

    @property
    def slots(self) -> range:
        return range(self.start, self.start + self.size)


@dataclass(frozen=True)
class Gpu:
    """A physical GPU with the attributes the reference driver publishes."""

    index: int
    minor: int
    uuid: str
    model: str
    product_name: str
    brand: str
    architecture: str
    cuda_compute_capability: str
    driver_version: str
    cuda_driver_version: str
    pci_bus_id: str
    pcie_root: str
    memory_bytes: int
    multiprocessors: int
    copy_engines: int
    decoders: int
    encoders: int
    jpeg_engines: int
    ofa_engines: int
    mig_capable: bool
    mig_enabled: bool
    memory_slices: int = 0
    mig_devices: tuple[MigDevice, ...] = field(default_factory=tuple)


class EventKind(enum.Enum):
    XID = "xid"
    GPU_LOST = "gpu-lost"
    RECOVERED = "recovered"


@dataclass(frozen=True)
class HealthEvent:
    gpu_uuid: str
    kind: EventKind
    xid: int = 0
    message: str = ""


class Nvml(Protocol):
    """The NVML operations the plugin uses. Implementations are thread-safe."""

    def gpus(self) -> list[Gpu]: ...

    def mig_profiles(self, gpu_uuid: str) -> list[MigProfile]: ...

    def create_mig(self, gpu_uuid: str, profile: str, start: int) -> MigDevice: ...

    def destroy_mig(self, gpu_uuid: str, gi_id: int) -> None: ...

    def wait_events(self, timeout_s: float) -> list[HealthEvent]: ...

    def shutdown(self) -> None: ...
