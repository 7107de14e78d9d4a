"""Scenario 1: the plugin (``gpupolicy plugin run``, simulated 8×H100 NVML) publishes its node's ResourceSlices to the
real API server — whole GPUs, dynamic MIG over shared counters, shared GPUs — keeps the pool consistent across a
restart and a policy change (generations), republishes a slice deleted behind its back (at once, through its watch:
also with an hour to the next resync), owns its slices once its Node is created, and withdraws on uninstall."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Cleanup
from tests.e2e.controlplane import ControlPlane
from tests.e2e.kube import Kube, Obj, create_node
from tests.e2e.pluginproc import MIXED_POLICY, PluginProcess

pytestmark = pytest.mark.testbed

DRIVER = "gpu.gpupolicy.dev"
EXCLUSIVE_POLICY = """\
apiVersion: gpupolicy.dev/v1alpha1
kind: GpuPolicy
metadata: {name: e2e-all-whole}
spec:
  driverName: gpu.gpupolicy.dev
  sharing:
  - name: whole
    exclusive: {}
"""


def node_slices(kube: Kube, node: str) -> list[Obj]:
    return kube.list("resource.k8s.io/v1", "ResourceSlice", field_selector=f"spec.nodeName={node},spec.driver={DRIVER}")


def complete_pool(slices: list[Obj]) -> bool:
    """What a consumer checks: every slice of the newest generation is there, and only those count."""
    if not slices:
        return False
    newest = max(s["spec"]["pool"]["generation"] for s in slices)
    current = [s for s in slices if s["spec"]["pool"]["generation"] == newest]
    return all(s["spec"]["pool"]["resourceSliceCount"] == len(current) for s in current)


def devices(slices: list[Obj]) -> dict[str, Obj]:
    newest = max(s["spec"]["pool"]["generation"] for s in slices)
    return {
        d["name"]: d
        for s in slices
        if s["spec"]["pool"]["generation"] == newest
        for d in s["spec"].get("devices") or []
    }


def wait_published(kube: Kube, plugin: PluginProcess, *, min_generation: int = 0) -> list[Obj]:
    def probe() -> list[Obj] | None:
        assert plugin.running(), f"the plugin exited:\n{plugin.log()}"
        slices = node_slices(kube, plugin.node)
        ok = complete_pool(slices) and all(s["spec"]["pool"]["generation"] >= min_generation for s in slices)
        return slices if ok else None

    result: list[Obj] = kube.wait_for(f"a complete pool for {plugin.node}", probe, timeout_s=60)
    return result


@pytest.fixture
def plugin(kube: Kube, cleanup: Cleanup, kube_cluster: ControlPlane) -> Iterator[PluginProcess]:
    node = create_node(kube, f"h100-{uuid.uuid4().hex[:6]}")
    cleanup.track(node)
    proc = PluginProcess(kube_cluster, node["metadata"]["name"], MIXED_POLICY)
    yield proc
    proc.close()
    for s in node_slices(kube, proc.node):
        kube.delete("resource.k8s.io/v1", "ResourceSlice", s["metadata"]["name"])


def test_publishes_every_kind_of_device_owned_by_the_node(kube: Kube, plugin: PluginProcess) -> None:
    plugin.start()
    slices = wait_published(kube, plugin)
    node_uid = kube.get("v1", "Node", plugin.node)["metadata"]["uid"]
    assert {s["spec"]["pool"]["name"] for s in slices} == {plugin.node}
    assert all(s["metadata"]["ownerReferences"][0]["uid"] == node_uid for s in slices)
    found = devices(slices)
    whole = [n for n, d in found.items() if d["attributes"]["type"]["string"] == "gpu"]
    assert sorted(whole) == [f"gpu-{i}" for i in range(8)]
    partitionable = {n.split("-mig-")[0] for n, d in found.items() if d.get("consumesCounters")}
    assert partitionable == {"gpu-3", "gpu-4", "gpu-5"}
    assert sorted(n for n, d in found.items() if d.get("allowMultipleAllocations")) == ["gpu-6", "gpu-7"]
    counter_sets = {c["name"] for s in slices for c in s["spec"].get("sharedCounters") or []}
    assert len(counter_sets) == 3


def test_restart_keeps_the_pool_and_a_policy_change_bumps_the_generation(
    kube: Kube, plugin: PluginProcess, tmp_path: Path
) -> None:
    plugin.start()
    before = wait_published(kube, plugin)
    generation = max(s["spec"]["pool"]["generation"] for s in before)
    assert plugin.stop() == 0, plugin.log()
    assert complete_pool(node_slices(kube, plugin.node)), "a graceful stop must not withdraw the slices"

    plugin.start()
    kube.wait_for("the restarted plugin to serve", lambda: any(plugin.registry_dir.glob("*-reg.sock")))
    time.sleep(2.5)  # more than two resync periods: the restarted plugin has compared its slices with the server's
    after_restart = wait_published(kube, plugin)
    assert devices(after_restart) == devices(before)
    assert min(s["spec"]["pool"]["generation"] for s in after_restart) >= generation

    plugin.stop()
    whole = tmp_path / "whole.yaml"
    whole.write_text(EXCLUSIVE_POLICY)
    plugin.start(whole)

    def regenerated() -> list[Obj] | None:
        slices = node_slices(kube, plugin.node)
        newest = max((s["spec"]["pool"]["generation"] for s in slices), default=0)
        return (
            slices
            if newest > generation
            and complete_pool(slices)
            and not any(d.get("consumesCounters") for d in devices(slices).values())
            else None
        )

    changed = kube.wait_for("the new generation without MIG devices", regenerated, timeout_s=60)
    assert sorted(devices(changed)) == [f"gpu-{i}" for i in range(8)]
    kube.wait_for(
        "the old generation to be deleted",
        lambda: len({s["spec"]["pool"]["generation"] for s in node_slices(kube, plugin.node)}) == 1,
    )


def test_a_slice_deleted_behind_its_back_is_republished(kube: Kube, plugin: PluginProcess) -> None:
    plugin.start()
    slices = wait_published(kube, plugin)
    victim = slices[-1]["metadata"]["name"]
    kube.delete("resource.k8s.io/v1", "ResourceSlice", victim)
    kube.wait_for(
        f"{victim} (or its replacement) to be republished",
        lambda: (
            complete_pool(node_slices(kube, plugin.node))
            and len(devices(node_slices(kube, plugin.node))) == len(devices(slices))
        ),
        timeout_s=30,
    )


def test_watches_republish_and_own_the_slices_without_waiting_for_the_resync(
    kube: Kube, cleanup: Cleanup, kube_cluster: ControlPlane
) -> None:
    """With an hour to the next resync only the watches explain it: the Node, created after the first publish, owns
    the slices soon; all slices deleted at once (kubelet's start: a deletecollection by ``spec.nodeName``) are back
    soon; the plugin's own writes, which come back to it as events, cause no more writes."""
    name = f"late-{uuid.uuid4().hex[:6]}"
    proc = PluginProcess(kube_cluster, name, MIXED_POLICY, resync_s=3600)
    try:
        proc.start()
        first = wait_published(kube, proc)
        assert not any(s["metadata"].get("ownerReferences") for s in first), "published before its Node existed"
        node = create_node(kube, name)
        cleanup.track(node)
        uid = node["metadata"]["uid"]

        def owned() -> list[Obj] | None:
            slices = node_slices(kube, name)
            ok = complete_pool(slices) and all(
                s["metadata"].get("ownerReferences", [{}])[0].get("uid") == uid for s in slices
            )
            return slices if ok else None

        kube.wait_for("the slices owned by the Node created after them", owned, timeout_s=10)
        wanted = len(devices(first))
        kube.raw("DELETE", f"/apis/resource.k8s.io/v1/resourceslices?fieldSelector=spec.nodeName%3D{name}")

        def republished() -> list[Obj] | None:
            slices = node_slices(kube, name)
            return slices if complete_pool(slices) and len(devices(slices)) == wanted else None

        kube.wait_for("the deleted slices to be republished", republished, timeout_s=10)
        time.sleep(1)  # the republish's own events and the sync they cause are over
        versions = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in node_slices(kube, name)}
        time.sleep(2)
        after = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in node_slices(kube, name)}
        assert after == versions, "the plugin wrote again with nothing changed: its own events made a loop"
        assert proc.running(), proc.log()
    finally:
        proc.close()
        for s in node_slices(kube, name):
            kube.delete("resource.k8s.io/v1", "ResourceSlice", s["metadata"]["name"])


def test_withdraw_removes_the_nodes_slices_only(kube: Kube, cleanup: Cleanup, plugin: PluginProcess) -> None:
    other = cleanup.create(
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceSlice",
            "metadata": {"name": f"other-{uuid.uuid4().hex[:6]}"},
            "spec": {
                "driver": DRIVER,
                "nodeName": "some-other-node",
                "pool": {"name": "some-other-node", "generation": 1, "resourceSliceCount": 1},
                "devices": [],
            },
        }
    )
    plugin.start()
    wait_published(kube, plugin)
    plugin.stop(signal.SIGTERM)
    result = plugin.withdraw(DRIVER)
    assert result.returncode == 0, result.stderr
    assert node_slices(kube, plugin.node) == []
    assert kube.get("resource.k8s.io/v1", "ResourceSlice", other["metadata"]["name"])
