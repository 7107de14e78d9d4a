"""Publishing ResourceSlices through the fake API server."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.kubelet.driver import Options, Plugin
from gpupolicy.plugin.kubelet.nvml.sim import SimNvml
from gpupolicy.plugin.kubelet.publish import Publisher
from gpupolicy.plugin.kubelet.sharing import FakeRunner
from gpupolicy.policy.builder import NodeRef
from gpupolicy.policy.gpu import Mode, Publish
from tests.fakes.kube import FakeKube
from tests.plugin.kubelet.helpers import DRIVER, NODE


def _plugin(tmp_path: Path, spec: str, kube: FakeKube, publish_for=None) -> Plugin:  # type: ignore[no-untyped-def]
    options = Options(
        node=NODE,
        driver=DRIVER,
        plugin_dir=tmp_path / "plugins",
        registry_dir=tmp_path / "registry",
        cdi_root=tmp_path / "cdi",
        state_dir=tmp_path / "state",
        nvml="sim:" + spec,
    )
    nvml = SimNvml(spec, seed=NODE)
    return Plugin(options, kube=kube, nvml=nvml, runner=FakeRunner(), publish_for=publish_for)


def _started(tmp_path: Path, spec: str, kube: FakeKube, publish_for=None) -> Plugin:  # type: ignore[no-untyped-def]
    plugin = _plugin(tmp_path, spec, kube, publish_for)
    plugin.start()
    assert plugin.publisher is not None
    assert plugin.publisher.published.wait(10)
    return plugin


def test_pool_owned_by_node_and_unchanged_sync_writes_nothing(tmp_path: Path) -> None:
    kube = FakeKube()
    node_uid = kube.put_node(NODE)["metadata"]["uid"]
    plugin = _started(tmp_path, "8xH100-80GB", kube)
    try:
        (obj,) = kube.slices.values()
        assert obj["spec"]["pool"] == {"name": NODE, "generation": 1, "resourceSliceCount": 1}
        assert obj["metadata"]["ownerReferences"] == [
            {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": node_uid, "controller": True}
        ]
        assert len(obj["spec"]["devices"]) == 8
        assert plugin.publisher is not None
        writes = plugin.publisher.writes
        assert plugin.publisher.sync() is False
        assert plugin.publisher.writes == writes
    finally:
        plugin.stop()


def test_large_pool_split_within_limits(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.put_node(NODE)
    dynamic = Publish(mode=Mode.MIG, mig_dynamic=True)
    plugin = _started(tmp_path, "8xA100-40GB:mig", kube, lambda g, v: dynamic)
    try:
        slices = list(kube.slices.values())
        assert len(slices) > 2
        for s in slices:
            assert len(s["spec"].get("devices", [])) <= 64
            assert len(s["spec"].get("sharedCounters", [])) <= 8
            assert s["spec"]["pool"]["resourceSliceCount"] == len(slices)
    finally:
        plugin.stop()


def test_retries_with_backoff_until_api_server_answers(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.put_node(NODE)
    kube.reachable = False
    publisher = Publisher(kube, DRIVER, NODE, lambda ref, gen: [], backoff_s=(0.01, 0.05))
    publisher.start()
    try:
        time.sleep(0.3)
        assert not publisher.published.is_set() and "unreachable" in publisher.last_error
        attempts = kube.calls.count("get_node")
        assert 3 <= attempts <= 40
        kube.reachable = True
        assert publisher.published.wait(5)
    finally:
        publisher.stop()


def test_generation_bumped_on_change_and_withdraw(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.put_node(NODE)
    devices: list[dict] = [{"name": "gpu-0"}]  # type: ignore[type-arg]

    def build(ref, generation):  # type: ignore[no-untyped-def]
        return [
            {
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceSlice",
                "metadata": {"name": "s-0"},
                "spec": {
                    "driver": DRIVER,
                    "nodeName": NODE,
                    "pool": {"name": NODE, "generation": generation, "resourceSliceCount": 1},
                    "devices": list(devices),
                },
            }
        ]

    publisher = Publisher(kube, DRIVER, NODE, build)
    assert publisher.sync() is True and kube.slices["s-0"]["spec"]["pool"]["generation"] == 1
    assert publisher.sync() is False
    devices.append({"name": "gpu-1"})
    assert publisher.sync() is True and kube.slices["s-0"]["spec"]["pool"]["generation"] == 2
    kube.slices["s-0"]["spec"]["devices"][0]["taints"] = [{"key": "x", "effect": "NoSchedule"}]
    assert publisher.sync() is True and kube.slices["s-0"]["spec"]["pool"]["generation"] == 3
    assert publisher.withdraw() == 1 and kube.slices == {}


def test_recreated_node_gets_the_slices(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.put_node(NODE)
    publisher = Publisher(kube, DRIVER, NODE, lambda ref, gen: [_slice(ref, gen)])
    assert publisher.sync()
    del kube.nodes[NODE]
    new_uid = kube.put_node(NODE)["metadata"]["uid"]
    assert publisher.sync()
    assert kube.slices["s-0"]["metadata"]["ownerReferences"][0]["uid"] == new_uid
    assert kube.slices["s-0"]["spec"]["pool"]["generation"] == 2


def _slice(ref: NodeRef, generation: int) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {
            "name": "s-0",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": ref.name, "uid": ref.uid, "controller": True}
            ],
        },
        "spec": {
            "driver": DRIVER,
            "nodeName": NODE,
            "pool": {"name": NODE, "generation": generation, "resourceSliceCount": 1},
        },
    }


def test_a_missing_node_is_warned_about_once_until_it_is_found(caplog: pytest.LogCaptureFixture) -> None:
    """The Node's watch and the slices' own events make syncs; the warning comes once per absence, not per sync."""
    kube = FakeKube()
    publisher = Publisher(kube, DRIVER, NODE, lambda ref, gen: [_slice(ref, gen)])
    with caplog.at_level(logging.WARNING, logger="gpupolicy.plugin.kubelet.publish"):
        for _ in range(3):
            publisher.sync()
        kube.put_node(NODE)
        publisher.sync()
        kube.delete_node(NODE)
        publisher.sync()
        publisher.sync()
    assert [r.getMessage() for r in caplog.records] == [
        f"Node {NODE} not found: publishing slices without an owner"
    ] * 2
