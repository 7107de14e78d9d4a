"""Start-up reconciliation: orphans removed, interrupted prepares rolled back, lost checkpoints rebuilt."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.kubelet.cdi import CdiDevice
from gpupolicy.plugin.kubelet.checkpoint_schema import CheckpointVersionUnsupported, canonical, checksum_v1
from gpupolicy.plugin.kubelet.driver import BOOT_ID_ENV
from gpupolicy.plugin.kubelet.nvml.sim import SimNvml
from gpupolicy.plugin.kubelet.reconcile import ReconcileReport
from tests.plugin.kubelet.helpers import DRIVER, NODE, SPEC, claim_obj, opaque, ref
from tests.plugin.kubelet.helpers import PluginNode as Node

MPS = {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 50}}


def test_orphans_destroyed_and_foreign_static_mig_kept(tmp_path: Path) -> None:
    node = Node(tmp_path)
    nvml = SimNvml(SPEC, seed=NODE, state_file=node.state / "sim-nvml.json")
    gpu0, gpu1, _ = nvml.gpus()
    nvml.create_mig(gpu1.uuid, "3g.20gb", 0)  # an admin's instance: GPU 1 becomes static MIG
    (tmp_path / "cdi").mkdir()
    (tmp_path / "cdi" / f"k8s.{DRIVER}-claim_orphan.json").write_text("{}")
    (tmp_path / "cdi" / "k8s.other.driver-claim_x.json").write_text("{}")
    plugin = node.plugin()
    assert plugin.report.removed_cdi == ["orphan"]
    try:
        claim = ref(node.kube.put_claim(claim_obj("c", [("m", "gpu-0-mig-1g5gb-19-3")])))
        assert node.preparer(plugin).prepare([claim])[claim.uid].error == ""
        plugin.nvml.create_mig(gpu0.uuid, "1g.5gb", 6)  # leaked on our dynamic GPU
    finally:
        plugin.stop()
    plugin = node.plugin()
    try:
        assert len(plugin.report.destroyed_mig) == 1
        instances = sorted((g.minor, m.profile, m.start) for g in plugin.nvml.gpus() for m in g.mig_devices)
        assert instances == [(0, "1g.5gb", 3), (1, "3g.20gb", 0)]
        assert sorted(p.name for p in (tmp_path / "cdi").iterdir()) == [
            f"k8s.{DRIVER}-claim_{claim.uid}.json",
            "k8s.other.driver-claim_x.json",
        ]
        assert "gpu-1-mig-3g20gb-9-0" in plugin.inventory.devices
    finally:
        plugin.stop()


def test_corrupted_checkpoint_rebuilt_from_api_server(tmp_path: Path) -> None:
    node = Node(tmp_path)
    plugin = node.plugin()
    claim = ref(node.kube.put_claim(claim_obj("c", [("m", "gpu-0-mig-3g20gb-9-4"), ("g", "gpu-2")])))
    stale = ref(node.kube.put_claim(claim_obj("gone", [("g", "gpu-1-mig-7g40gb-0-0")])))
    results = node.preparer(plugin).prepare([claim, stale])
    assert all(r.error == "" for r in results.values())
    plugin.stop()
    del node.kube.claims[("default", "gone")]
    (node.state / "checkpoint.json").write_text('{"version": 1, "claims": {tru')
    plugin = node.plugin()
    try:
        assert plugin.report.rebuilt == [claim.uid]
        assert (node.state / "checkpoint.json.corrupt-0").exists()
        deadline = time.monotonic() + 5
        while not node.kube.events and time.monotonic() < deadline:
            time.sleep(0.01)
        (event,) = node.kube.events
        assert (event["reason"], event["type"], event["involvedObject"]["name"]) == (
            "CheckpointCorrupted",
            "Warning",
            NODE,
        )
        instances = sorted((g.minor, m.profile, m.start) for g in plugin.nvml.gpus() for m in g.mig_devices)
        assert instances == [(0, "3g.20gb", 4)]
        preparer = node.preparer(plugin)
        node.kube.reachable = False
        again = preparer.prepare([claim])[claim.uid]
        assert again.error == "" and {d.device_name for d in again.devices} == {"gpu-0-mig-3g20gb-9-4", "gpu-2"}
        node.kube.reachable = True
        other = ref(node.kube.put_claim(claim_obj("other", [("g", "gpu-2")])))
        assert "already prepared" in preparer.prepare([other])[other.uid].error
        assert preparer.unprepare([claim]) == {claim.uid: ""}
        assert all(not g.mig_devices for g in plugin.nvml.gpus())
    finally:
        plugin.stop()


def test_corrupted_checkpoint_and_no_api_server_destroys_nothing(tmp_path: Path) -> None:
    node = Node(tmp_path)
    plugin = node.plugin()
    claim = ref(node.kube.put_claim(claim_obj("c", [("m", "gpu-0-mig-3g20gb-9-4")])))
    assert node.preparer(plugin).prepare([claim])[claim.uid].error == ""
    plugin.stop()
    (node.state / "checkpoint.json").write_text("not json")
    node.kube.reachable = False
    plugin = node.plugin()
    try:
        assert "not cleaning up" in plugin.report.degraded
        assert [m.start for g in plugin.nvml.gpus() for m in g.mig_devices] == [4]
        assert len(list((tmp_path / "cdi").iterdir())) == 1
    finally:
        plugin.stop()


def _prepared_mig_claim(node: Node) -> tuple[Any, list[tuple[int, str, int]]]:
    """A claim with a dynamic MIG device and MPS, prepared; the plugin stopped. Returns it and the MIG instances."""
    plugin = node.plugin()
    claim = ref(
        node.kube.put_claim(claim_obj("c", [("m", "gpu-0-mig-3g20gb-9-4")], config=[opaque("MigDeviceConfig", MPS)]))
    )
    assert node.preparer(plugin).prepare([claim])[claim.uid].error == ""
    plugin.stop()
    return claim, _instances(node)


def _instances(node: Node) -> list[tuple[int, str, int]]:
    nvml = SimNvml(SPEC, seed=NODE, state_file=node.state / "sim-nvml.json")
    return sorted((g.minor, m.profile, m.start) for g in nvml.gpus() for m in g.mig_devices)


def test_a_version_1_checkpoint_keeps_every_claim_across_the_upgrade(tmp_path: Path) -> None:
    node = Node(tmp_path)
    claim, instances = _prepared_mig_claim(node)
    path = node.state / "checkpoint.json"
    doc = json.loads(path.read_text())
    v1 = {"bootId": doc["bootId"], "claims": doc["claims"], "version": 1}  # as the version-1 writer wrote it
    path.write_text(canonical({**v1, "checksum": checksum_v1(doc["bootId"], canonical(doc["claims"]))}))
    node.kube.reachable = False  # the state comes from the checkpoint, not from a rebuild
    plugin = node.plugin()
    try:
        assert plugin.report == ReconcileReport() and _instances(node) == instances
        preparer = node.preparer(plugin)
        assert [d.device_name for d in preparer.prepare([claim])[claim.uid].devices] == ["gpu-0-mig-3g20gb-9-4"]
        node.kube.reachable = True
        assert preparer.unprepare([claim]) == {claim.uid: ""} and _instances(node) == []
        assert json.loads(path.read_text())["version"] == 2  # the next write is the current version
    finally:
        plugin.stop()


def test_a_checkpoint_of_a_newer_version_stops_the_plugin_before_it_changes_anything(tmp_path: Path) -> None:
    node = Node(tmp_path)
    claim, instances = _prepared_mig_claim(node)
    path = node.state / "checkpoint.json"
    raw = json.dumps({**json.loads(path.read_text()), "version": 3, "aNewSection": {}}, indent=2).encode()
    path.write_bytes(raw)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "sim-nvml" not in p.name)
    with pytest.raises(CheckpointVersionUnsupported, match=f"^{path}: checkpoint_version_unsupported: version: 3 "):
        node.plugin()
    assert path.read_bytes() == raw
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "sim-nvml" not in p.name) == before
    assert _instances(node) == instances and (tmp_path / "cdi" / f"k8s.{DRIVER}-claim_{claim.uid}.json").exists()
    assert list(json.loads((node.state / "cmd.json").read_text())["mps"])  # the claim's MPS daemon still runs
    (event,) = node.kube.events
    assert (event["reason"], event["type"]) == ("CheckpointVersionUnsupported", "Warning")
    assert "run a build that reads version 3" in event["message"]


def test_new_boot_discards_prepared_state(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    node = Node(tmp_path)
    monkeypatch.setenv(BOOT_ID_ENV, "boot-1")
    plugin = node.plugin()
    claim = ref(node.kube.put_claim(claim_obj("c", [("g", "gpu-2")])))
    assert node.preparer(plugin).prepare([claim])[claim.uid].error == ""
    plugin.stop()
    monkeypatch.setenv(BOOT_ID_ENV, "boot-2")
    plugin = node.plugin()
    try:
        assert node.preparer(plugin).records == {}
        assert plugin.report.removed_cdi == [claim.uid]
        doc = json.loads((node.state / "checkpoint.json").read_text())
        assert doc["bootId"] == "boot-2" and doc["claims"] == {}
    finally:
        plugin.stop()
    assert os.environ[BOOT_ID_ENV] == "boot-2"


def test_cdi_spec_shape(tmp_path: Path) -> None:
    from gpupolicy.plugin.kubelet.cdi import CdiRegistry, mig_cap_minor

    registry = CdiRegistry(tmp_path, DRIVER)
    path = registry.write("u1", [CdiDevice("gpu-0", ("/dev/nvidia0",), {"A": "1"}, (("/h", "/c"),))])
    spec = json.loads(path.read_text())
    assert spec["kind"] == f"k8s.{DRIVER}/claim" and spec["cdiVersion"] == "0.6.0"
    assert spec["devices"][0]["name"] == "u1-gpu-0"
    assert spec["devices"][0]["containerEdits"]["mounts"][0]["hostPath"] == "/h"
    assert {"path": "/dev/nvidiactl"} in spec["containerEdits"]["deviceNodes"]
    assert registry.claim_uids() == ["u1"] and registry.device_id("u1", "gpu-0") == f"k8s.{DRIVER}/claim=u1-gpu-0"
    assert (mig_cap_minor(0, 1), mig_cap_minor(0, 1, 0), mig_cap_minor(1, 0)) == (12, 13, 138)
    assert registry.remove("u1") and not registry.remove("u1")


def test_shared_mps_daemon_survives_restart_and_rebuild(tmp_path: Path) -> None:
    from gpupolicy.policy.gpu import Mode, Publish

    def shared(gpu, view):  # type: ignore[no-untyped-def]
        return Publish(mode=Mode.MPS, shares=4) if gpu.minor == 2 else Publish()

    node = Node(tmp_path)
    plugin = node.plugin(shared)
    claims = [
        ref(node.kube.put_claim(claim_obj(f"c{i}", [("g", "gpu-2")], share_ids={"gpu-2": f"s{i}"}))) for i in range(2)
    ]
    assert all(r.error == "" for r in node.preparer(plugin).prepare(claims).values())
    plugin.stop()

    def daemons() -> list[str]:
        return list(json.loads((node.state / "cmd.json").read_text())["mps"])

    assert len(daemons()) == 1
    plugin = node.plugin(shared)
    assert daemons() and plugin.report.removed_mps == []
    plugin.stop()
    (node.state / "checkpoint.json").write_text("{}")
    plugin = node.plugin(shared)
    try:
        assert sorted(plugin.report.rebuilt) == sorted(c.uid for c in claims)
        assert daemons() and plugin.report.removed_mps == []
        preparer = node.preparer(plugin)
        assert preparer.unprepare(claims[:1]) == {claims[0].uid: ""} and daemons()
        assert preparer.unprepare(claims[1:]) == {claims[1].uid: ""} and daemons() == []
    finally:
        plugin.stop()
