"""The simulated NVML: specs, discovery attributes, MIG rules and errors, persistence, faults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpupolicy.plugin.kubelet.nvml.sim import SimNvml, inject_fault, parse_spec
from gpupolicy.plugin.kubelet.nvml.types import EventKind, NvmlError


def test_spec_forms() -> None:
    assert len(parse_spec("8xH100-80GB")) == 8
    specs = parse_spec("2xA100-40GB,1xL4")
    assert [s.model for s in specs] == ["A100-40GB", "A100-40GB", "L4"]
    (mig,) = parse_spec("1xA100:mig=3g.20gb@0+2g.10gb@4")
    assert mig.model == "A100-40GB" and mig.mig_enabled and mig.static_mig == (("3g.20gb", 0), ("2g.10gb", 4))


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ("8xH999", "unknown_gpu_model"),
        ("1xL4:mig", "mig_not_supported"),
        ("eight H100s", "invalid_sim_spec"),
        ("", "invalid_sim_spec"),
        ("60xH100-80GB,5xL4", "invalid_sim_spec"),  # more GPUs than a node has
    ],
)
def test_bad_specs(spec: str, code: str) -> None:
    with pytest.raises(NvmlError) as err:
        parse_spec(spec)
    assert err.value.code == code


def test_discovery_is_deterministic_and_complete() -> None:
    a = SimNvml("2xH100-80GB", seed="node-a").gpus()
    assert a == SimNvml("2xH100-80GB", seed="node-a").gpus()
    assert a[0].uuid != SimNvml("2xH100-80GB", seed="node-b").gpus()[0].uuid
    gpu = a[1]
    assert (gpu.minor, gpu.product_name, gpu.architecture, gpu.cuda_compute_capability) == (
        1, "NVIDIA H100 80GB HBM3", "Hopper", "9.0",
    )  # fmt: skip
    assert gpu.uuid.startswith("GPU-") and gpu.pci_bus_id.startswith("0000:") and gpu.pcie_root.startswith("pci")
    assert gpu.memory_bytes == 81559 * 2**20 and gpu.multiprocessors == 132 and gpu.mig_capable and not gpu.mig_enabled


def test_pci_addresses_stay_valid_and_distinct_on_large_nodes() -> None:
    gpus = SimNvml("16xV100-32GB,48xL4", seed="dgx").gpus()
    ids = [g.pci_bus_id for g in gpus]
    assert len(set(ids)) == 64
    assert all(re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:00\.0", i) for i in ids), ids  # was 0000:108:00.0 at GPU 15
    assert ids[0] == "0000:18:00.0" and ids[14] == "0000:f8:00.0" and ids[15] == "0001:18:00.0"
    assert all(re.fullmatch(r"pci[0-9a-f]{4}:[0-9a-f]{2}", g.pcie_root) for g in gpus)


@pytest.mark.parametrize(
    ("existing", "profile", "start", "code"),
    [
        ([], "2g.10gb", 1, "invalid_placement"),
        ([("3g.20gb", 0)], "1g.5gb", 2, "placement_occupied"),
        ([("4g.20gb", 0)], "4g.20gb", 4, "invalid_placement"),
        ([("1g.5gb+me", 0)], "1g.5gb+me", 1, "media_extension_in_use"),
        ([], "5g.25gb", 0, "unknown_profile"),
    ],
)
def test_mig_placement_errors(existing: list[tuple[str, int]], profile: str, start: int, code: str) -> None:
    nvml = SimNvml("1xA100-40GB:mig")
    uuid = nvml.gpus()[0].uuid
    for p, s in existing:
        nvml.create_mig(uuid, p, s)
    with pytest.raises(NvmlError) as err:
        nvml.create_mig(uuid, profile, start)
    assert err.value.code == code


def test_mig_disabled_and_full_layout() -> None:
    nvml = SimNvml("1xA100-40GB,1xA30:mig")
    a100, a30 = nvml.gpus()
    with pytest.raises(NvmlError, match="mig_disabled"):
        nvml.create_mig(a100.uuid, "1g.5gb", 0)
    for start in range(4):
        nvml.create_mig(a30.uuid, "1g.6gb", start)
    devices = nvml.gpus()[1].mig_devices
    assert [(d.profile, d.start, d.gi_profile_id) for d in devices] == [("1g.6gb", s, 14) for s in range(4)]
    assert len({d.uuid for d in devices}) == 4
    nvml.destroy_mig(a30.uuid, devices[2].gi_id)
    assert [d.start for d in nvml.gpus()[1].mig_devices] == [0, 1, 3]
    with pytest.raises(NvmlError, match="not_found"):
        nvml.destroy_mig(a30.uuid, devices[2].gi_id)


def test_state_persists_across_instances_and_faults_arrive(tmp_path: Path) -> None:
    state = tmp_path / "sim.json"
    first = SimNvml("1xH100:mig", state_file=state)
    created = first.create_mig(first.gpus()[0].uuid, "3g.40gb", 4)
    second = SimNvml("1xH100:mig", state_file=state)
    assert second.gpus()[0].mig_devices == (created,)
    inject_fault(state, 0, EventKind.GPU_LOST)
    (event,) = second.wait_events(1.0)
    assert event.kind is EventKind.GPU_LOST and event.gpu_uuid == created.parent_uuid
    with pytest.raises(NvmlError, match="gpu_lost"):
        second.create_mig(created.parent_uuid, "1g.10gb", 0)
    assert second.wait_events(0.05) == []
    inject_fault(state, 0, EventKind.RECOVERED)
    assert second.wait_events(1.0)[0].kind is EventKind.RECOVERED
    assert not second.is_lost(0)
