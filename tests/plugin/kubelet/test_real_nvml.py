"""The pynvml backend against a scripted stand-in for the NVML library (no GPU needed).

One non-MIG L4 and one MIG-enabled A100 with a 3g.20gb instance at slot 4: checks that discovery
reads every attribute through the calls real NVML offers, and MIG create/destroy call sequences.
"""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

import pynvml
import pytest

from gpupolicy.plugin.kubelet.nvml.real import RealNvml

PROFILES = {  # NVML profile enum -> (id shown by nvidia-smi, name, compute slices, memory MiB, placement size, starts)
    pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE: (19, "MIG 1g.5gb", 1, 4864, 1, range(7)),
    pynvml.NVML_GPU_INSTANCE_PROFILE_3_SLICE: (9, "MIG 3g.20gb", 3, 19968, 4, (0, 4)),
}


class FakeNvml:
    def __init__(self) -> None:
        ada, ampere = pynvml.NVML_DEVICE_ARCH_ADA, pynvml.NVML_DEVICE_ARCH_AMPERE
        self.gpus = [
            NS(uuid="GPU-l4", name="NVIDIA L4", mig=None, bus="00000000:3B:00.0", minor=0, arch=ada),
            NS(uuid="GPU-a100", name="NVIDIA A100-SXM4-40GB", mig=1, bus="00000000:5E:00.0", minor=1, arch=ampere),
        ]
        self.instances: dict[int, NS] = {1: NS(gi=1, profile=9, start=4, size=4)}
        self.destroyed: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in dir(self):
            if name.startswith("nvml"):
                monkeypatch.setattr(pynvml, name, getattr(self, name))

    def _gpu(self, handle: Any) -> Any:
        if handle.kind != "gpu":
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[handle.index]

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> NS:
        return NS(kind="gpu", index=i)

    def nvmlDeviceGetHandleByUUID(self, uuid: bytes) -> NS:
        return NS(kind="gpu", index=[g.uuid for g in self.gpus].index(uuid.decode()))

    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.95.05"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 13000

    def nvmlDeviceGetUUID(self, h: NS) -> Any:
        return f"MIG-{h.gi}" if h.kind == "mig" else self._gpu(h).uuid

    def nvmlDeviceGetName(self, h: NS) -> Any:
        return self._gpu(h).name

    def nvmlDeviceGetPciInfo(self, h: NS) -> NS:
        return NS(busId=self._gpu(h).bus.encode())

    def nvmlDeviceGetCudaComputeCapability(self, h: NS) -> tuple[int, int]:
        return (8, 9) if self._gpu(h).mig is None else (8, 0)

    def nvmlDeviceGetMigMode(self, h: NS) -> list[int]:
        if self._gpu(h).mig is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [self._gpu(h).mig, self._gpu(h).mig]

    def nvmlDeviceGetMinorNumber(self, h: NS) -> int:
        return int(self._gpu(h).minor)

    def nvmlDeviceGetBrand(self, h: NS) -> int:
        return int(pynvml.NVML_BRAND_NVIDIA)

    def nvmlDeviceGetArchitecture(self, h: NS) -> int:
        return int(self._gpu(h).arch)

    def nvmlDeviceGetMemoryInfo(self, h: NS) -> NS:
        return NS(total=(23034 if self._gpu(h).mig is None else 40960) * 2**20)

    def nvmlDeviceGetAttributes(self, h: NS) -> NS:
        if h.kind == "mig":
            return NS(multiprocessorCount=42, memorySizeMB=19968)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetGpuInstanceProfileInfo(self, h: NS, profile: int) -> NS:
        if profile not in PROFILES:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        pid, name, slices, mem, _, _ = PROFILES[profile]
        engines = {"decoderCount": 0, "encoderCount": 0, "jpegCount": 0, "ofaCount": 0, "copyEngineCount": slices}
        return NS(
            id=pid,
            name=name.encode(),
            sliceCount=slices,
            instanceCount=7 // slices,
            multiprocessorCount=14 * slices,
            memorySizeMB=mem,
            **engines,
        )

    def nvmlDeviceGetGpuInstancePossiblePlacements(self, h: NS, pid: int, out: Any, count: Any) -> None:
        (_, _, _, _, size, starts) = next(v for v in PROFILES.values() if v[0] == pid)
        for i, start in enumerate(starts):
            out[i].start, out[i].size = start, size
        count._obj.value = len(starts)

    def nvmlDeviceGetMaxMigDeviceCount(self, h: NS) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: NS, i: int) -> NS:
        gis = sorted(self.instances)
        if i >= len(gis):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return NS(kind="mig", gi=gis[i])

    def nvmlDeviceGetGpuInstanceId(self, h: NS) -> int:
        return int(h.gi)

    def nvmlDeviceGetComputeInstanceId(self, h: NS) -> int:
        return 0

    def nvmlDeviceGetGpuInstanceById(self, h: NS, gi: int) -> NS:
        return NS(gi=gi)

    def nvmlGpuInstanceGetInfo(self, gi: NS) -> NS:
        inst = self.instances[gi.gi]
        return NS(id=inst.gi, profileId=inst.profile, placement=NS(start=inst.start, size=inst.size))

    def nvmlDeviceCreateGpuInstanceWithPlacement(self, h: NS, profile: int, placement: Any) -> NS:
        pid, _, _, _, size, _ = PROFILES[profile]
        gi = max(self.instances, default=0) + 1
        self.instances[gi] = NS(gi=gi, profile=pid, start=placement.start, size=placement.size)
        assert placement.size == size
        return NS(gi=gi)

    def nvmlGpuInstanceGetComputeInstanceProfileInfo(self, gi: NS, profile: int, eng: int) -> NS:
        if profile > pynvml.NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return NS(sliceCount=profile + 1)

    def nvmlGpuInstanceCreateComputeInstance(self, gi: NS, profile: int) -> NS:
        assert profile == pynvml.NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE
        return NS(ci=0)

    def nvmlGpuInstanceGetComputeInstances(self, gi: NS, profile: int, out: Any, count: Any) -> None:
        count._obj.value = 1 if profile == pynvml.NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE else 0

    def nvmlComputeInstanceDestroy(self, ci: Any) -> None:
        self.destroyed.append("ci")

    def nvmlGpuInstanceDestroy(self, gi: NS) -> None:
        self.destroyed.append(f"gi{gi.gi}")
        del self.instances[gi.gi]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    nvml = FakeNvml()
    nvml.install(monkeypatch)
    return nvml


def test_discovery_reads_every_attribute(fake: FakeNvml) -> None:
    l4, a100 = RealNvml().gpus()
    assert (l4.uuid, l4.product_name, l4.architecture, l4.cuda_compute_capability) == (
        "GPU-l4", "NVIDIA L4", "Ada Lovelace", "8.9",
    )  # fmt: skip
    assert (l4.driver_version, l4.cuda_driver_version, l4.pci_bus_id) == ("580.95.05", "13.0", "0000:3b:00.0")
    assert not l4.mig_capable and l4.mig_devices == ()
    assert a100.mig_capable and a100.mig_enabled and a100.memory_slices == 4 and a100.minor == 1
    (mig,) = a100.mig_devices
    assert (mig.profile, mig.gi_profile_id, mig.gi_id, mig.start, mig.size, mig.uuid) == (
        "3g.20gb",
        9,
        1,
        4,
        4,
        "MIG-1",
    )
    assert mig.memory_bytes == 19968 * 2**20 and mig.multiprocessors == 42
    profiles = {p.name: p for p in RealNvml().mig_profiles("GPU-a100")}
    assert profiles["1g.5gb"].starts == tuple(range(7)) and profiles["3g.20gb"].starts == (0, 4)


def test_create_and_destroy_mig(fake: FakeNvml) -> None:
    nvml = RealNvml()
    created = nvml.create_mig("GPU-a100", "3g.20gb", 0)
    assert (created.profile, created.start, created.gi_id) == ("3g.20gb", 0, 2)
    nvml.destroy_mig("GPU-a100", 2)
    assert fake.destroyed == ["ci", "gi2"] and sorted(fake.instances) == [1]
    with pytest.raises(Exception, match="unknown_profile"):
        nvml.create_mig("GPU-a100", "2g.10gb", 0)


def test_events_xid_lost_and_recovered(fake: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    import gpupolicy.plugin.kubelet.nvml.real as real
    from gpupolicy.plugin.kubelet.nvml.types import EventKind

    monkeypatch.setattr(real, "PROBE_INTERVAL_S", 0.0)
    queue: list[Any] = [
        NS(device=NS(kind="gpu", index=1), eventData=79),
        NS(device=NS(kind="gpu", index=1), eventData=13),
    ]
    lost: set[str] = set()

    def wait(events: Any, timeout_ms: int) -> Any:
        if not queue:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT)
        return queue.pop(0)

    def memory(handle: Any) -> Any:
        if fake.gpus[handle.index].uuid in lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return NS(total=1)

    monkeypatch.setattr(pynvml, "nvmlEventSetCreate", lambda: object(), raising=False)
    monkeypatch.setattr(pynvml, "nvmlDeviceRegisterEvents", lambda *a: None)
    monkeypatch.setattr(pynvml, "nvmlEventSetWait", wait)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo", memory)
    nvml = RealNvml()
    (xid,) = nvml.wait_events(0.01)
    assert (xid.gpu_uuid, xid.kind, xid.xid) == ("GPU-a100", EventKind.XID, 79)
    assert nvml.wait_events(0.01) == []  # Xid 13 is the application's fault
    lost.add("GPU-l4")
    assert [(e.gpu_uuid, e.kind) for e in nvml.wait_events(0.01)] == [("GPU-l4", EventKind.GPU_LOST)]
    assert nvml.wait_events(0.01) == []
    lost.clear()
    assert [(e.gpu_uuid, e.kind) for e in nvml.wait_events(0.01)] == [("GPU-l4", EventKind.RECOVERED)]
