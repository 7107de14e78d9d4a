"""Records rebuilt from the API server: a checkpoint damaged or lost while the API server is down leaves the
plugin degraded (nothing cleaned up, claims refused with ``checkpoint_rebuilding``, the checkpoint marked
``needsRebuild`` so that a restart waits too) until a retry rebuilds them; a checkpoint missing while this
boot's CDI specs or MIG instances exist is such a loss, not a fresh start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.kubelet import reconcile
from gpupolicy.plugin.kubelet.claims import ClaimRef
from tests.plugin.kubelet.helpers import DRIVER, SPEC, PluginNode, claim_obj, opaque, ref, until

MPS = {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 50}}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconcile, "BACKOFF_S", (0.05, 0.2), raising=False)


def _events(node: PluginNode, reason: str) -> list[dict[str, Any]]:
    return [e for e in node.kube.events if e["reason"] == reason]


class Devices:
    """What the simulated node has: MIG instances, this driver's CDI specs, MPS daemons."""

    def __init__(self, node: PluginNode) -> None:
        self.node = node

    def mig(self) -> list[str]:
        from gpupolicy.plugin.kubelet.nvml.sim import SimNvml

        nvml = SimNvml(SPEC, seed="node-a", state_file=self.node.state / "sim-nvml.json")
        return sorted(m.uuid for g in nvml.gpus() for m in g.mig_devices)

    def cdi(self) -> list[str]:
        root = self.node.tmp / "cdi"
        prefix = f"k8s.{DRIVER}-claim_"
        return sorted(p.name[len(prefix) : -5] for p in root.iterdir() if p.name.startswith(prefix))

    def mps(self) -> list[str]:
        path = self.node.state / "cmd.json"
        return sorted(json.loads(path.read_text())["mps"]) if path.exists() else []

    def snapshot(self) -> tuple[list[str], list[str], list[str]]:
        return self.mig(), self.cdi(), self.mps()


def _two_prepared_claims(node: PluginNode) -> tuple[ClaimRef, ClaimRef]:
    """Two claims with a dynamic MIG device and an MPS daemon each, prepared; the plugin stopped."""
    plugin = node.plugin()
    claims = tuple(
        ref(node.kube.put_claim(claim_obj(name, [("m", device)], config=[opaque("MigDeviceConfig", MPS)])))
        for name, device in (("keep", "gpu-0-mig-3g20gb-9-4"), ("gone", "gpu-1-mig-3g20gb-9-0"))
    )
    results = node.preparer(plugin).prepare(list(claims))
    assert [r.error for r in results.values()] == ["", ""]
    plugin.stop()
    return claims[0], claims[1]


def test_a_rebuild_the_api_server_refused_is_retried_and_nothing_is_touched_until_then(tmp_path: Path) -> None:
    node = PluginNode(tmp_path)
    keep, gone = _two_prepared_claims(node)
    devices = Devices(node)
    before = devices.snapshot()
    assert [len(x) for x in before] == [2, 2, 2]
    (node.state / "checkpoint.json").write_text("{ damaged")
    node.kube.reachable = False
    plugin = node.plugin()
    try:
        preparer = node.preparer(plugin)
        assert "not cleaning up" in plugin.report.degraded
        assert "being rebuilt" in preparer.unprepare([gone])[gone.uid]  # not a no-op that leaks its devices
        prepared = preparer.prepare([keep])[keep.uid]
        assert "being rebuilt" in prepared.error and prepared.devices == ()
        assert devices.snapshot() == before and preparer.rebuilding
        assert json.loads((node.state / "checkpoint.json").read_text())["needsRebuild"].startswith(
            "checkpoint is corrupt"
        )
        del node.kube.claims[("default", "gone")]  # its pod ended during the outage
        node.kube.reachable = True
        until(lambda: not preparer.rebuilding)
        assert plugin.report.rebuilt == [keep.uid]
        (event,) = until(lambda: _events(node, "CheckpointRebuilt"))
        assert event["type"] == "Normal" and "rebuilt 1 claim records" in event["message"]
        assert devices.cdi() == [keep.uid] and len(devices.mig()) == 1 and len(devices.mps()) == 1  # gone's: removed
        again = preparer.prepare([keep])[keep.uid]
        assert again.error == "" and [d.device_name for d in again.devices] == ["gpu-0-mig-3g20gb-9-4"]
        assert "needsRebuild" not in json.loads((node.state / "checkpoint.json").read_text())
        assert preparer.unprepare([keep]) == {keep.uid: ""}
        assert devices.snapshot() == ([], [], [])
    finally:
        plugin.stop()


def test_a_restart_while_the_rebuild_is_pending_destroys_nothing(tmp_path: Path) -> None:
    node = PluginNode(tmp_path)
    keep, other = _two_prepared_claims(node)
    devices = Devices(node)
    before = devices.snapshot()
    (node.state / "checkpoint.json").write_text("[]")
    node.kube.reachable = False
    node.plugin().stop()
    plugin = node.plugin()  # again while the API server is down: still waiting
    try:
        assert devices.snapshot() == before and node.preparer(plugin).rebuilding
    finally:
        plugin.stop()
    assert len(list(node.state.glob("checkpoint.json.corrupt-*"))) == 1  # the marker file is not corrupt
    node.kube.reachable = True
    plugin = node.plugin()  # the API server is back: rebuilt, the running claims keep everything
    try:
        assert sorted(plugin.report.rebuilt) == sorted([keep.uid, other.uid])
        assert devices.snapshot() == before
        assert not node.preparer(plugin).rebuilding
        assert until(lambda: _events(node, "CheckpointRebuilt"))
        records = node.preparer(plugin).records
        assert {r.mig[0].uuid for r in records.values()} == set(before[0])  # their instances, by ID
    finally:
        plugin.stop()


def test_a_missing_checkpoint_with_this_boots_devices_is_a_lost_one(tmp_path: Path) -> None:
    node = PluginNode(tmp_path)
    keep, other = _two_prepared_claims(node)
    devices = Devices(node)
    before = devices.snapshot()
    (node.state / "checkpoint.json").unlink()
    plugin = node.plugin()
    try:
        assert sorted(plugin.report.rebuilt) == sorted([keep.uid, other.uid])
        assert devices.snapshot() == before  # nothing destroyed
        (event,) = until(lambda: _events(node, "CheckpointLost"))
        assert event["type"] == "Warning" and "is missing, but 2 CDI specs and 2 dynamic MIG" in event["message"]
        preparer = node.preparer(plugin)
        assert preparer.prepare([keep])[keep.uid].error == ""
        assert preparer.unprepare([keep, other]) == {keep.uid: "", other.uid: ""}
        assert devices.snapshot() == ([], [], [])
    finally:
        plugin.stop()


def test_a_missing_checkpoint_while_the_api_server_is_down_keeps_everything(tmp_path: Path) -> None:
    node = PluginNode(tmp_path)
    _two_prepared_claims(node)
    devices = Devices(node)
    before = devices.snapshot()
    (node.state / "checkpoint.json").unlink()
    node.kube.reachable = False
    plugin = node.plugin()
    try:
        assert "is missing, but 2 CDI specs" in plugin.report.degraded
        assert devices.snapshot() == before
    finally:
        plugin.stop()


def test_a_fresh_node_does_not_ask_the_api_server_for_claims(tmp_path: Path) -> None:
    node = PluginNode(tmp_path)
    plugin = node.plugin()
    try:
        assert plugin.report == reconcile.ReconcileReport()
        assert not (node.state / "checkpoint.json").exists()  # nothing to write either
        assert "list_claims" not in node.kube.calls and not node.preparer(plugin).rebuilding
    finally:
        plugin.stop()
