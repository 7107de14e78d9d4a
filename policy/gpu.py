"""A GPU as discovered on a node, and how a policy wants it published.

:class:`GpuInfo` is what the plugin's NVML discovery produces and what cluster descriptions
expand into; :class:`Publish` is what the policy's sharing rules decide for one GPU. The
ResourceSlice builder (:mod:`gpupolicy.policy.builder`) turns both into devices.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gpupolicy.policy.catalog import GpuModel, MigPlacement, Placement, get_model


@dataclass(frozen=True)
class MigInstance:
    """An existing MIG device: a GPU instance of ``profile`` at ``start`` (plus its compute instance)."""

    profile: str
    start: int
    uuid: str = ""
    gi_id: int | None = None
    ci_id: int | None = None


@dataclass(frozen=True)
class GpuTaint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True)
class GpuInfo:
    """One physical GPU on a node.

    ``model`` is a catalog name or alias (or NVML product name); ``product_name`` defaults to the
    catalog's. ``memory_bytes`` overrides the catalog's memory when NVML reports another value.
    """

    model: str
    minor: int
    uuid: str
    pci_bus_id: str
    driver_version: str = "570.124.6"
    cuda_driver_version: str = "12.8.0"
    mig_enabled: bool = False
    mig_instances: tuple[MigInstance, ...] = ()
    product_name: str | None = None
    pcie_root: str | None = None
    memory_bytes: int | None = None
    taints: tuple[GpuTaint, ...] = ()

    @property
    def spec(self) -> GpuModel:
        return get_model(self.model)

    @property
    def effective_product_name(self) -> str:
        return self.product_name or self.spec.product_name

    @property
    def effective_memory_bytes(self) -> int:
        return self.memory_bytes if self.memory_bytes is not None else self.spec.memory_bytes

    def mig_placements(self) -> list[MigPlacement]:
        spec = self.spec
        out = []
        for inst in self.mig_instances:
            profile = spec.profile(inst.profile)
            out.append(MigPlacement(profile, Placement(inst.start, profile.memory_slots)))
        return out


class Mode(enum.StrEnum):
    EXCLUSIVE = "exclusive"
    TIME_SLICING = "timeSlicing"
    MPS = "mps"
    MIG = "mig"
    SHARES = "shares"


@dataclass(frozen=True)
class Publish:
    """How one GPU is published, as decided by the policy's first matching sharing rule.

    - ``EXCLUSIVE``: the full GPU, one claim at a time (static MIG devices instead when the GPU
      already has MIG instances).
    - ``TIME_SLICING`` / ``MPS`` / ``SHARES``: with ``shares`` set, one ``allowMultipleAllocations``
      device with a ``shares`` capacity (and ``memory`` with a request policy); without, the full GPU
      as one device that the pods of one claim share.
    - ``MIG``: ``dynamic`` -> partitionable devices for every allowed profile and placement;
      otherwise the existing MIG instances, or ``layout`` placed on an empty GPU.

    ``time_slice_interval`` and the ``mps_*`` fields are the policy's settings the plugin applies
    at prepare (a claim's or class's opaque config may override them).
    """

    mode: Mode = Mode.EXCLUSIVE
    rule: str = ""
    shares: int | None = None
    memory_default_bytes: int = 0
    mig_dynamic: bool = False
    mig_profiles: tuple[str, ...] = ()
    mig_layout: tuple[str, ...] = field(default=())
    time_slice_interval: str = "Default"
    mps_active_thread_percentage: int | None = None
    mps_pinned_memory_bytes: int | None = None

    def allows_profile(self, name: str) -> bool:
        return not self.mig_profiles or name in self.mig_profiles


EXCLUSIVE = Publish()
