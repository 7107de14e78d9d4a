"""Scenario 2 (slices): the ResourceSlices our builder yields for a simulated 8×H100 node — full GPUs, dynamic MIG
with shared counters, shared GPUs with consumable capacity — are accepted by the real API server, and the server
keeps every field (a field the server drops, e.g. counters behind a disabled gate, would silently break MIG)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from gpupolicy.policy.builder import NodeRef, build_slices
from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.gpu import EXCLUSIVE, GpuInfo, Mode, Publish
from gpupolicy.policy.k8s.dump import to_wire
from tests.e2e.conftest import Cleanup
from tests.e2e.kube import Kube, KubeError, Obj, create_node

pytestmark = pytest.mark.testbed

DRIVER = "gpu.gpupolicy.dev"
GIB = 1 << 30


def h100_node_gpus(node: str) -> list[GpuInfo]:
    return [
        GpuInfo(
            model="H100-80GB",
            minor=minor,
            uuid=f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'{node}/{minor}')}",
            pci_bus_id=f"0000:{0x18 + minor:02x}:00.0",
            mig_enabled=minor in (3, 4, 5),
            pcie_root=f"pci0000:{minor // 2:02x}",
        )
        for minor in range(8)
    ]


def mixed_sharing(gpu: GpuInfo, view: DeviceView) -> Publish:
    """GPUs 0-2 whole, 3-5 dynamic MIG (partitionable, counters), 6 time-sliced shares, 7 MPS shares."""
    if gpu.minor in (3, 4, 5):
        return Publish(Mode.MIG, "mig", mig_dynamic=True)
    if gpu.minor == 6:
        return Publish(Mode.TIME_SLICING, "ts", shares=4, memory_default_bytes=20 * GIB)
    if gpu.minor == 7:
        return Publish(Mode.MPS, "mps", shares=8, memory_default_bytes=10 * GIB)
    return EXCLUSIVE


def node_slices(node: Obj, generation: int = 1) -> list[Obj]:
    meta = node["metadata"]
    slices = build_slices(
        NodeRef(meta["name"], meta["uid"]),
        h100_node_gpus(meta["name"]),
        publish_for=mixed_sharing,
        driver=DRIVER,
        generation=generation,
    )
    return [to_wire(s) for s in slices]


def strip_server_fields(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    meta = out["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
        meta.pop(key, None)
    return out


def devices_of(slices: list[Obj]) -> dict[str, Any]:
    return {d["name"]: d for s in slices for d in s["spec"].get("devices") or []}


@pytest.fixture
def gpu_node(kube: Kube, cleanup: Cleanup) -> Obj:
    return cleanup.track(create_node(kube, f"h100-{uuid.uuid4().hex[:6]}"))


def test_the_simulated_node_covers_every_publication_kind(gpu_node: Obj) -> None:
    devices = devices_of(node_slices(gpu_node))
    assert any("consumesCounters" in d for d in devices.values())
    assert any(d.get("allowMultipleAllocations") for d in devices.values())
    assert {d["attributes"]["type"]["string"] for d in devices.values()} == {"gpu", "mig"}


def test_every_slice_passes_server_side_dry_run(kube: Kube, gpu_node: Obj) -> None:
    for wire in node_slices(gpu_node):
        echoed = kube.create(wire, dry_run=True)
        assert echoed["spec"] == wire["spec"], wire["metadata"]["name"]
    assert (
        kube.list("resource.k8s.io/v1", "ResourceSlice", field_selector=f"spec.nodeName={gpu_node['metadata']['name']}")
        == []
    )


def test_slices_are_stored_unchanged_and_form_a_complete_pool(kube: Kube, cleanup: Cleanup, gpu_node: Obj) -> None:
    name = gpu_node["metadata"]["name"]
    wanted = node_slices(gpu_node)
    for wire in wanted:
        cleanup.create(wire)
    stored = kube.list("resource.k8s.io/v1", "ResourceSlice", field_selector=f"spec.nodeName={name}")
    by_name = {s["metadata"]["name"]: strip_server_fields(s) for s in stored}
    assert by_name == {w["metadata"]["name"]: w for w in wanted}
    pools = {(s["spec"]["pool"]["name"], s["spec"]["pool"]["resourceSliceCount"]) for s in stored}
    assert pools == {(name, len(stored))}
    assert all(s["metadata"]["ownerReferences"][0]["uid"] == gpu_node["metadata"]["uid"] for s in stored)


def test_counters_are_in_their_own_slices(kube: Kube, cleanup: Cleanup, gpu_node: Obj) -> None:
    for wire in node_slices(gpu_node):
        cleanup.create(wire)
    stored = kube.list(
        "resource.k8s.io/v1", "ResourceSlice", field_selector=f"spec.nodeName={gpu_node['metadata']['name']}"
    )
    counter_slices = [s for s in stored if s["spec"].get("sharedCounters")]
    assert counter_slices, "dynamic MIG needs counter sets"
    assert all(not s["spec"].get("devices") for s in counter_slices)
    sets = {c["name"] for s in counter_slices for c in s["spec"]["sharedCounters"]}
    consumed = {c["counterSet"] for d in devices_of(stored).values() for c in d.get("consumesCounters") or []}
    assert consumed == sets


def test_a_slice_over_the_device_limit_is_refused(kube: Kube, gpu_node: Obj) -> None:
    """The builder's split matters: one slice holding every device of the node is too big for the server."""
    slices = node_slices(gpu_node)
    devices = [d for s in slices for d in s["spec"].get("devices") or []]
    assert len(devices) > 64
    merged = copy.deepcopy(next(s for s in slices if s["spec"].get("devices")))
    merged["spec"]["devices"] = devices
    with pytest.raises(KubeError) as err:
        kube.create(merged, dry_run=True)
    assert err.value.status == 422
    assert "spec.devices" in err.value.message
