"""The plugin under a real kubelet (v1.37.2): registration through ``plugins_registry``, pods with whole-GPU, dynamic
MIG and shared claims scheduled by the real scheduler going Running with exactly their allocation's CDI devices,
unprepare on delete, health reaching the pod's status, the kubelet's slice wipe at its start, a kubelet restart
and a plugin killed in the middle of a prepare the kubelet then retries."""

from __future__ import annotations

import re
import time

import pytest

from gpupolicy.plugin.kubelet.faults import ENV as CRASH_AT
from tests.e2e.kube import Kube, Obj
from tests.e2e.kubelet.conftest import MakeNode
from tests.e2e.kubelet.nodecheck import (
    cdi_specs,
    create_container_calls,
    expected_cdi_ids,
    fault,
    kubelet_prepare_calls,
    mig_instances,
    plugin_metrics,
    spec_files_of,
)
from tests.e2e.kubelet.pods import (
    CLASSES,
    claim_pod,
    claim_template,
    delete_and_wait_gone,
    phase,
    pod_claim,
    wait_running,
)
from tests.e2e.node import KubeletNode
from tests.e2e.test_plugin_publish import DRIVER, complete_pool, devices, node_slices

pytestmark = [pytest.mark.testbed, pytest.mark.kubelet]


def run_pods(kube: Kube, namespace: str, node: KubeletNode, kinds: list[str]) -> dict[str, tuple[Obj, Obj]]:
    """One pod per kind, created at once; returns {kind: (running pod, its allocated claim)}."""
    for kind in kinds:
        kube.create(claim_template(namespace, kind, CLASSES[kind]))
        kube.create(claim_pod(namespace, f"pod-{kind}", node.name, kind))
    out = {}
    for kind in kinds:
        pod = wait_running(kube, namespace, f"pod-{kind}")
        out[kind] = (pod, pod_claim(kube, namespace, pod))
    return out


def test_kubelet_registers_the_plugin_over_v1_and_opens_the_health_stream(make_node: MakeNode) -> None:
    node = make_node()
    [line] = node.registered_lines(DRIVER)[-1:]
    assert 'chosenService="v1.DRAPlugin"' in line, line
    assert str(node.plugin.dra_socket(DRIVER)) in line
    log = node.kubelet_log(200_000)
    assert re.search(r"Successfully started WatchResources health stream", log), "no health stream"
    assert "kubelet registered plugin" in node.plugin.log()


def test_pods_run_with_exactly_their_allocations_cdi_devices_and_unprepare_on_delete(
    node_kube: Kube, make_node: MakeNode, mixed_classes: list[str], node_namespace: str
) -> None:
    node = make_node()
    running = run_pods(node_kube, node_namespace, node, ["whole", "mig", "shared"])
    specs = cdi_specs(node)
    for kind, (pod, claim) in running.items():
        assert pod["spec"]["nodeName"] == node.name
        [given] = node.cdi_devices_of(node_namespace, f"pod-{kind}")
        assert sorted(given) == expected_cdi_ids(claim), kind
        for cdi_id in given:
            assert cdi_id in specs, f"{cdi_id} is in no CDI spec the plugin wrote"
            assert specs[cdi_id]["containerEdits"]["deviceNodes"], cdi_id
    [mig_result] = running["mig"][1]["status"]["allocation"]["devices"]["results"]
    gpu = int(mig_result["device"].split("-")[1])
    assert [i.gpu for i in mig_instances(node)] == [gpu], "one MIG instance, on the allocated GPU"
    [shared_result] = running["shared"][1]["status"]["allocation"]["devices"]["results"]
    assert shared_result.get("shareID"), "a multi-allocatable device gets a share ID"

    for kind, (_, claim) in running.items():
        delete_and_wait_gone(node_kube, node_namespace, f"pod-{kind}")
        uid = claim["metadata"]["uid"]
        node_kube.wait_for(f"{kind} claim's CDI spec removed", lambda uid=uid: not spec_files_of(node, uid), 30)
    assert mig_instances(node) == [], "the MIG instance is destroyed when its pod goes"
    assert cdi_specs(node) == {}


def container_health(kube: Kube, namespace: str, pod: str) -> list[Obj]:
    current = kube.get("v1", "Pod", pod, namespace)
    statuses = current.get("status", {}).get("containerStatuses") or []
    return [r for s in statuses for rs in s.get("allocatedResourcesStatus") or [] for r in rs.get("resources") or []]


def test_an_xid_reaches_the_pods_status_and_a_device_taint_then_recovery_clears_both(
    node_kube: Kube, make_node: MakeNode, mixed_classes: list[str], node_namespace: str
) -> None:
    node = make_node()
    _, claim = run_pods(node_kube, node_namespace, node, ["whole"])["whole"]
    [result] = claim["status"]["allocation"]["devices"]["results"]
    device = result["device"]
    healthy = node_kube.wait_for(
        "the pod's allocatedResourcesStatus",
        lambda: container_health(node_kube, node_namespace, "pod-whole"),
        timeout_s=30,
    )
    assert {r["health"] for r in healthy} == {"Healthy"}, healthy

    fault(node, int(device.split("-")[1]), "xid", 79)
    started = time.monotonic()
    unhealthy = node_kube.wait_for(
        "the pod's device to turn Unhealthy",
        lambda: [r for r in container_health(node_kube, node_namespace, "pod-whole") if r["health"] == "Unhealthy"],
        timeout_s=30,
    )
    seconds = time.monotonic() - started
    assert unhealthy[0]["resourceID"].endswith(device), unhealthy
    # .get: while the publisher writes a new generation of the pool slice by slice, the newest one can be incomplete
    node_kube.wait_for(
        f"{device} tainted",
        lambda: devices(node_slices(node_kube, node.name)).get(device, {}).get("taints"),
        timeout_s=30,
    )
    assert seconds < 10, f"the XID took {seconds:.1f} s to reach the pod"

    fault(node, int(device.split("-")[1]), "recovered")
    node_kube.wait_for(
        "the pod's device Healthy again",
        lambda: {r["health"] for r in container_health(node_kube, node_namespace, "pod-whole")} == {"Healthy"},
        timeout_s=30,
    )
    node_kube.wait_for(
        f"{device}'s taint lifted",
        lambda: not devices(node_slices(node_kube, node.name)).get(device, {"taints": "absent"}).get("taints"),
        timeout_s=30,
    )
    assert phase(node_kube, node_namespace, "pod-whole") == "Running"


def owned_by(slices: list[Obj], node_uid: str) -> bool:
    return bool(slices) and all(
        [(o["kind"], o["uid"]) for o in s["metadata"].get("ownerReferences") or []] == [("Node", node_uid)]
        for s in slices
    )


def test_slices_wiped_by_the_kubelet_at_start_come_back_within_seconds_owned_by_the_node(
    node_kube: Kube, make_node: MakeNode
) -> None:
    """The plugin starts first (slices without an owner: no Node yet); the kubelet then registers the Node and
    deletes every slice of it. The plugin's resync is 300 s here, so only noticing the deletion brings them back."""
    node = make_node(start=False)
    node.start_cri()
    node.plugin.start()
    before = node_kube.wait_for(
        "the first publish",
        lambda: complete_pool(node_slices(node_kube, node.name)) and node_slices(node_kube, node.name),
    )
    assert all(not s["metadata"].get("ownerReferences") for s in before), "no Node yet, so no owner"
    first = {s["metadata"]["uid"] for s in before}

    node.start_kubelet()
    registered = node.wait_ready(node_kube)
    node.wait_plugin_registered(DRIVER)
    wiped = "Deleted ResourceSlices" in node.kubelet_log(500_000)
    started = time.monotonic()

    def republished() -> list[Obj] | None:
        now = node_slices(node_kube, node.name)
        fresh = now and complete_pool(now) and not ({s["metadata"]["uid"] for s in now} & first)
        return now if fresh and owned_by(now, registered["metadata"]["uid"]) else None

    after = node_kube.wait_for("slices republished and owned by the Node", republished, timeout_s=20)
    assert wiped, "the kubelet did not log deleting the node's slices"
    assert time.monotonic() - started < 10
    assert len(after) == len(before)


def test_kubelet_restart_keeps_running_pods_devices(
    node_kube: Kube, make_node: MakeNode, mixed_classes: list[str], node_namespace: str
) -> None:
    node = make_node()
    running = run_pods(node_kube, node_namespace, node, ["whole", "mig", "shared"])
    migs, specs = mig_instances(node), cdi_specs(node)
    prepares_before = kubelet_prepare_calls(node.metrics())
    created = {kind: create_container_calls(node, node_namespace, f"pod-{kind}") for kind in running}

    node.stop_kubelet()
    node.start_kubelet()
    node.wait_ready(node_kube)
    node.wait_plugin_registered(DRIVER)
    time.sleep(5)  # a few pod syncs and PLEG relists of the restarted kubelet

    for kind in running:
        assert phase(node_kube, node_namespace, f"pod-{kind}") == "Running", kind
        assert create_container_calls(node, node_namespace, f"pod-{kind}") == created[kind], "container recreated"
    assert mig_instances(node) == migs, "MIG instances changed across a kubelet restart"
    assert cdi_specs(node) == specs, "CDI specs changed across a kubelet restart"
    # Whatever the restarted kubelet asks again (it keeps prepared claims in a checkpoint of its own) is a no-op:
    # the plugin still holds exactly the three claims, with the same MIG instance and CDI specs (above).
    assert prepares_before == 3
    assert plugin_metrics(node)("gpupolicy_plugin_prepared_claims") == 3
    assert node.plugin.running()

    # And the restarted kubelet still unprepares when a pod goes.
    delete_and_wait_gone(node_kube, node_namespace, "pod-mig")
    node_kube.wait_for("the MIG instance destroyed", lambda: mig_instances(node) == [], timeout_s=30)


def test_plugin_killed_mid_prepare_recovers_on_the_kubelets_retry(
    node_kube: Kube, make_node: MakeNode, mixed_classes: list[str], node_namespace: str
) -> None:
    # SIGKILLed after the MIG instance exists, before the CDI spec is written
    node = make_node(plugin_env={CRASH_AT: "prepare-cdi"})
    node_kube.create(claim_template(node_namespace, "mig", CLASSES["mig"]))
    node_kube.create(claim_pod(node_namespace, "pod-mig", node.name, "mig"))
    deadline = time.monotonic() + 60
    while node.plugin.running():
        assert time.monotonic() < deadline, node_kube.get("v1", "Pod", "pod-mig", node_namespace).get("status")
        time.sleep(0.1)
    crashed = time.monotonic()
    assert phase(node_kube, node_namespace, "pod-mig") != "Running"

    node.plugin.env = {}
    node.plugin.start()
    pod = wait_running(node_kube, node_namespace, "pod-mig", timeout_s=120)
    assert time.monotonic() - crashed < 60
    claim = pod_claim(node_kube, node_namespace, pod)
    [given] = node.cdi_devices_of(node_namespace, "pod-mig")
    assert sorted(given) == expected_cdi_ids(claim)
    [result] = claim["status"]["allocation"]["devices"]["results"]
    assert [i.gpu for i in mig_instances(node)] == [int(result["device"].split("-")[1])], "a MIG instance leaked"

    # A second claim on the same node gets a different device: nothing is handed to two claims.
    node_kube.create(claim_pod(node_namespace, "pod-mig-2", node.name, "mig"))
    second = pod_claim(node_kube, node_namespace, wait_running(node_kube, node_namespace, "pod-mig-2"))
    [result2] = second["status"]["allocation"]["devices"]["results"]
    assert result2["device"] != result["device"]
    uuids = [i.uuid for i in mig_instances(node)]
    assert len(uuids) == len(set(uuids)) == 2
