"""The committed stubs are what scripts/gen-protos makes, and the wire names match kubelet's."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gpupolicy.plugin.kubelet.proto import dra_v1_pb2, dra_v1beta1_pb2, health_v1alpha1_pb2, pluginregistration_pb2

REPO = Path(__file__).resolve().parents[3]
PROTO = Path("plugin", "kubelet", "proto")


def test_regenerating_gives_identical_files(tmp_path: Path) -> None:
    subprocess.run([str(REPO / "scripts" / "gen-protos"), str(tmp_path)], check=True, cwd=REPO)
    fresh, committed = tmp_path / PROTO, REPO / PROTO
    assert sorted(p.name for p in fresh.iterdir()) == sorted(p.name for p in committed.glob("*_pb2*.py"))
    for stub in fresh.iterdir():
        assert stub.read_text() == (committed / stub.name).read_text(), stub.name


def _fields(message: type) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}  # type: ignore[attr-defined]


def test_service_paths_and_field_numbers() -> None:
    v1 = dra_v1_pb2.DESCRIPTOR.services_by_name["DRAPlugin"]
    assert [m.full_name for m in v1.methods] == [
        "k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin.NodePrepareResources",
        "k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin.NodeUnprepareResources",
    ]
    assert dra_v1beta1_pb2.DESCRIPTOR.package == "k8s.io.kubelet.pkg.apis.dra.v1beta1"
    assert _fields(dra_v1_pb2.Device) == {
        "request_names": 1, "pool_name": 2, "device_name": 3, "cdi_device_ids": 4, "share_id": 5,
    }  # fmt: skip
    assert "share_id" not in _fields(dra_v1beta1_pb2.Device)
    assert _fields(dra_v1_pb2.NodePrepareResourceResponse) == {"devices": 1, "error": 2}
    assert _fields(dra_v1_pb2.Claim) == {"namespace": 1, "uid": 2, "name": 3}
    assert _fields(dra_v1_pb2.NodeUnprepareResourceResponse) == {"error": 1}
    assert pluginregistration_pb2.DESCRIPTOR.package == "pluginregistration"
    assert _fields(pluginregistration_pb2.PluginInfo) == {"type": 1, "name": 2, "endpoint": 3, "supported_versions": 4}
    assert _fields(pluginregistration_pb2.RegistrationStatus) == {"plugin_registered": 1, "error": 2}
    health = health_v1alpha1_pb2.DESCRIPTOR.services_by_name["DRAResourceHealth"]
    assert health.full_name == "v1alpha1.DRAResourceHealth"
    assert health.methods_by_name["NodeWatchResources"].server_streaming
    assert _fields(health_v1alpha1_pb2.DeviceHealth) == {
        "device": 1, "health": 2, "last_updated_time": 3, "health_check_timeout_seconds": 4, "message": 5,
    }  # fmt: skip
    assert health_v1alpha1_pb2.UNHEALTHY == 2


def test_wire_compatibility_between_versions() -> None:
    """A v1 response without share_id parses as v1beta1 (same field numbers)."""
    response = dra_v1_pb2.NodePrepareResourcesResponse()
    response.claims["uid"].devices.add(pool_name="p", device_name="gpu-0", cdi_device_ids=["x=y"])
    parsed = dra_v1beta1_pb2.NodePrepareResourcesResponse.FromString(response.SerializeToString())
    assert parsed.claims["uid"].devices[0].device_name == "gpu-0"
