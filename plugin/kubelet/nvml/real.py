"""The real NVML backend through ``pynvml`` (nvidia-ml-py). Never used by the test suite.

Discovery is read-only; MIG create/destroy follow what ``nvidia-smi mig -cgi <id> -C`` does:
a GPU instance at an explicit placement, then its default (full) compute instance.
"""

from __future__ import annotations

import ctypes
import threading
import time
from typing import Any

import pynvml

from gpupolicy.plugin.kubelet.nvml.types import EventKind, Gpu, HealthEvent, MigDevice, MigProfile, NvmlError

_ARCH = {
    pynvml.NVML_DEVICE_ARCH_VOLTA: "Volta",
    pynvml.NVML_DEVICE_ARCH_TURING: "Turing",
    pynvml.NVML_DEVICE_ARCH_AMPERE: "Ampere",
    pynvml.NVML_DEVICE_ARCH_ADA: "Ada Lovelace",
    pynvml.NVML_DEVICE_ARCH_HOPPER: "Hopper",
    pynvml.NVML_DEVICE_ARCH_BLACKWELL: "Blackwell",
}
_BRAND = {pynvml.NVML_BRAND_TESLA: "Tesla", pynvml.NVML_BRAND_NVIDIA: "Nvidia", pynvml.NVML_BRAND_QUADRO: "Quadro"}
_EVENTS = pynvml.nvmlEventTypeXidCriticalError
# XIDs that are the application's fault, not the GPU's (as the reference driver skips them).
_IGNORED_XIDS = frozenset({13, 31, 43, 45, 68, 109})
PROBE_INTERVAL_S = 5.0


def _call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except pynvml.NVMLError as exc:
        code = "gpu_lost" if exc.value == pynvml.NVML_ERROR_GPU_IS_LOST else "nvml_error"
        raise NvmlError(code, f"{getattr(fn, '__name__', 'nvml')}: {exc}") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RealNvml:
    """pynvml-backed ``Nvml``; one instance per process."""

    def __init__(self) -> None:
        _call(pynvml.nvmlInit)
        self._lock = threading.RLock()
        self._events: Any = None
        self._uuids: list[str] = []
        self._lost: set[str] = set()
        self._next_probe = 0.0

    def _handles(self) -> list[Any]:
        return [_call(pynvml.nvmlDeviceGetHandleByIndex, i) for i in range(_call(pynvml.nvmlDeviceGetCount))]

    def _handle(self, gpu_uuid: str) -> Any:
        return _call(pynvml.nvmlDeviceGetHandleByUUID, gpu_uuid.encode())

    def gpus(self) -> list[Gpu]:
        with self._lock:
            driver = _text(_call(pynvml.nvmlSystemGetDriverVersion))
            cuda = _call(pynvml.nvmlSystemGetCudaDriverVersion)
            cuda_text = f"{cuda // 1000}.{cuda % 1000 // 10}"
            return [self._gpu(i, h, driver, cuda_text) for i, h in enumerate(self._handles())]

    def _gpu(self, index: int, handle: Any, driver: str, cuda: str) -> Gpu:
        uuid = _text(_call(pynvml.nvmlDeviceGetUUID, handle))
        pci = _text(_call(pynvml.nvmlDeviceGetPciInfo, handle).busId).lower()
        major, minor_cc = _call(pynvml.nvmlDeviceGetCudaComputeCapability, handle)
        try:
            mig_enabled = _call(pynvml.nvmlDeviceGetMigMode, handle)[0] == pynvml.NVML_DEVICE_MIG_ENABLE
            mig_capable = True
        except NvmlError:
            mig_enabled = mig_capable = False
        profiles = self._profiles(handle) if mig_capable else []
        minor = _call(pynvml.nvmlDeviceGetMinorNumber, handle)
        return Gpu(
            index=index,
            minor=minor,
            uuid=uuid,
            model=_text(_call(pynvml.nvmlDeviceGetName, handle)),
            product_name=_text(_call(pynvml.nvmlDeviceGetName, handle)),
            brand=_BRAND.get(_call(pynvml.nvmlDeviceGetBrand, handle), "Nvidia"),
            architecture=_ARCH.get(_call(pynvml.nvmlDeviceGetArchitecture, handle), "Unknown"),
            cuda_compute_capability=f"{major}.{minor_cc}",
            driver_version=driver,
            cuda_driver_version=cuda,
            pci_bus_id=pci[4:] if len(pci) > 12 else pci,
            pcie_root=_pcie_root(pci),
            memory_bytes=int(_call(pynvml.nvmlDeviceGetMemoryInfo, handle).total),
            multiprocessors=_multiprocessors(handle, profiles),
            copy_engines=max((p.copy_engines for p in profiles), default=0),
            decoders=max((p.decoders for p in profiles), default=0),
            encoders=max((p.encoders for p in profiles), default=0),
            jpeg_engines=max((p.jpeg_engines for p in profiles), default=0),
            ofa_engines=max((p.ofa_engines for p in profiles), default=0),
            mig_capable=mig_capable,
            mig_enabled=mig_enabled,
            memory_slices=max((p.memory_slices for p in profiles), default=0),
            mig_devices=tuple(self._mig_devices(handle, uuid, minor, profiles)) if mig_enabled else (),
        )

    def _profiles(self, handle: Any) -> list[MigProfile]:
        profiles = []
        for nvml_id in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
            try:
                info = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, nvml_id)
            except pynvml.NVMLError:
                continue
            count = ctypes.c_uint(0)
            placements = (pynvml.c_nvmlGpuInstancePlacement_t * 16)()
            starts: tuple[int, ...] = ()
            size = 0
            try:
                pynvml.nvmlDeviceGetGpuInstancePossiblePlacements(handle, info.id, placements, ctypes.byref(count))
                starts = tuple(placements[i].start for i in range(count.value))
                size = placements[0].size if count.value else 0
            except pynvml.NVMLError:
                pass
            profiles.append(
                MigProfile(
                    name=_text(info.name).removeprefix("MIG "),
                    gi_profile_id=info.id,
                    compute_slices=info.sliceCount,
                    memory_slices=size,
                    memory_mib=int(info.memorySizeMB),
                    multiprocessors=info.multiprocessorCount,
                    copy_engines=info.copyEngineCount,
                    decoders=info.decoderCount,
                    encoders=info.encoderCount,
                    jpeg_engines=info.jpegCount,
                    ofa_engines=info.ofaCount,
                    max_instances=info.instanceCount,
                    starts=starts,
                )
            )
        return profiles

    def _mig_devices(self, handle: Any, parent: str, minor: int, profiles: list[MigProfile]) -> list[MigDevice]:
        by_id = {p.gi_profile_id: p for p in profiles}
        devices = []
        for i in range(_call(pynvml.nvmlDeviceGetMaxMigDeviceCount, handle)):
            try:
                mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
            except pynvml.NVMLError:
                continue
            gi_id = _call(pynvml.nvmlDeviceGetGpuInstanceId, mig)
            gi_info = _call(pynvml.nvmlGpuInstanceGetInfo, _call(pynvml.nvmlDeviceGetGpuInstanceById, handle, gi_id))
            profile = by_id.get(gi_info.profileId)
            attrs = _call(pynvml.nvmlDeviceGetAttributes, mig)
            devices.append(
                MigDevice(
                    uuid=_text(_call(pynvml.nvmlDeviceGetUUID, mig)),
                    parent_uuid=parent,
                    parent_minor=minor,
                    profile=profile.name if profile else str(gi_info.profileId),
                    gi_profile_id=gi_info.profileId,
                    gi_id=gi_id,
                    ci_id=_call(pynvml.nvmlDeviceGetComputeInstanceId, mig),
                    start=gi_info.placement.start,
                    size=gi_info.placement.size,
                    memory_bytes=int(attrs.memorySizeMB) * 2**20,
                    multiprocessors=attrs.multiprocessorCount,
                )
            )
        return devices

    def mig_profiles(self, gpu_uuid: str) -> list[MigProfile]:
        with self._lock:
            return self._profiles(self._handle(gpu_uuid))

    def create_mig(self, gpu_uuid: str, profile: str, start: int) -> MigDevice:
        with self._lock:
            handle = self._handle(gpu_uuid)
            profiles = self._profiles(handle)
            prof = next((p for p in profiles if p.name == profile), None)
            if prof is None:
                raise NvmlError("unknown_profile", f"{gpu_uuid} has no MIG profile {profile!r}")
            nvml_id = next(
                i for i in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT) if self._nvml_id_is(handle, i, prof)
            )
            placement = pynvml.c_nvmlGpuInstancePlacement_t(start, prof.memory_slices)
            gi = _call(pynvml.nvmlDeviceCreateGpuInstanceWithPlacement, handle, nvml_id, placement)
            try:
                _call(pynvml.nvmlGpuInstanceCreateComputeInstance, gi, _full_ci_profile(gi))
            except NvmlError:
                pynvml.nvmlGpuInstanceDestroy(gi)
                raise
            gi_id = _call(pynvml.nvmlGpuInstanceGetInfo, gi).id
            minor = _call(pynvml.nvmlDeviceGetMinorNumber, handle)
            for device in self._mig_devices(handle, gpu_uuid, minor, profiles):
                if device.gi_id == gi_id:
                    return device
            raise NvmlError("nvml_error", f"created GPU instance {gi_id} has no MIG device")

    @staticmethod
    def _nvml_id_is(handle: Any, nvml_id: int, profile: MigProfile) -> bool:
        try:
            return bool(pynvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, nvml_id).id == profile.gi_profile_id)
        except pynvml.NVMLError:
            return False

    def destroy_mig(self, gpu_uuid: str, gi_id: int) -> None:
        with self._lock:
            gi = _call(pynvml.nvmlDeviceGetGpuInstanceById, self._handle(gpu_uuid), gi_id)
            for ci_profile in range(pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
                count = ctypes.c_uint(0)
                cis = (pynvml.c_nvmlComputeInstance_t * 8)()
                try:
                    pynvml.nvmlGpuInstanceGetComputeInstances(gi, ci_profile, cis, ctypes.byref(count))
                except pynvml.NVMLError:
                    continue
                for i in range(count.value):
                    _call(pynvml.nvmlComputeInstanceDestroy, cis[i])
            _call(pynvml.nvmlGpuInstanceDestroy, gi)

    def _probe(self) -> list[HealthEvent]:
        """Every few seconds: a GPU that stops answering is lost, one that answers again recovered
        (NVML has no event for either). XID taints stay until the plugin restarts after a GPU reset."""
        now = time.monotonic()
        if now < self._next_probe:
            return []
        self._next_probe = now + PROBE_INTERVAL_S
        events = []
        for uuid in self._uuids:
            try:
                pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByUUID(uuid.encode()))
                answered = True
            except pynvml.NVMLError as exc:
                answered = exc.value not in (pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_UNKNOWN)
            if not answered and uuid not in self._lost:
                self._lost.add(uuid)
                events.append(HealthEvent(uuid, EventKind.GPU_LOST, 0, "GPU has fallen off the bus"))
            elif answered and uuid in self._lost:
                self._lost.discard(uuid)
                events.append(HealthEvent(uuid, EventKind.RECOVERED, 0, "GPU answers again"))
        return events

    def wait_events(self, timeout_s: float) -> list[HealthEvent]:
        if self._events is None:
            self._events = _call(pynvml.nvmlEventSetCreate)
            for handle in self._handles():
                self._uuids.append(_text(_call(pynvml.nvmlDeviceGetUUID, handle)))
                try:
                    pynvml.nvmlDeviceRegisterEvents(handle, _EVENTS, self._events)
                except pynvml.NVMLError:
                    continue
        probed = self._probe()
        if probed:
            return probed
        try:
            data = pynvml.nvmlEventSetWait(self._events, int(timeout_s * 1000))
        except pynvml.NVMLError as exc:
            if exc.value in (pynvml.NVML_ERROR_TIMEOUT, pynvml.NVML_ERROR_GPU_IS_LOST):
                return []
            raise NvmlError("nvml_error", str(exc)) from exc
        xid = int(data.eventData)
        if xid in _IGNORED_XIDS:
            return []
        uuid = _text(_call(pynvml.nvmlDeviceGetUUID, data.device))
        return [HealthEvent(uuid, EventKind.XID, xid, f"Xid {xid}")]

    def shutdown(self) -> None:
        pynvml.nvmlShutdown()


def _full_ci_profile(gi: Any) -> int:
    """The compute-instance profile spanning the whole GPU instance (most slices)."""
    best, best_slices = 0, -1
    for ci_profile in range(pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
        try:
            info = pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, ci_profile, 0)
        except pynvml.NVMLError:
            continue
        if info.sliceCount > best_slices:
            best, best_slices = ci_profile, info.sliceCount
    return best


def _multiprocessors(handle: Any, profiles: list[MigProfile]) -> int:
    try:
        return int(_call(pynvml.nvmlDeviceGetAttributes, handle).multiprocessorCount)
    except NvmlError:
        return max((p.multiprocessors for p in profiles), default=0)


def _pcie_root(bus_id: str) -> str:
    """``pci<domain>:<root bus>`` as the reference driver reports it (from sysfs on a real node)."""
    import os

    path = f"/sys/bus/pci/devices/{bus_id[-12:]}"
    try:
        real = os.path.realpath(path)
    except OSError:
        return ""
    parts = real.split("/")
    return next((p for p in parts if p.startswith("pci")), "")
