"""Scenario 3: pods with claim templates on a fake Node are scheduled by the real kube-scheduler (DynamicResources)
against the slices our plugin publishes; the real resource-claim controller makes their claims; then a kubelet
stand-in calls the plugin's NodePrepareResources over the real socket: the CDI spec and the checkpoint entry
appear, and unprepare removes them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from gpupolicy.policy.k8s.dump import to_wire
from gpupolicy.policy.policyfile.compile import load_policy
from tests.e2e.conftest import Cleanup
from tests.e2e.controlplane import ControlPlane, Process
from tests.e2e.kube import Kube, Obj, create_node
from tests.e2e.pluginproc import MIXED_POLICY, PluginProcess
from tests.e2e.test_plugin_publish import DRIVER, wait_published
from tests.plugin.kubelet.kubelet import FakeKubelet

pytestmark = pytest.mark.testbed

CLASSES = {"whole": "e2e-gpu.gpupolicy.dev", "mig": "e2e-mig-1g.gpupolicy.dev", "shared": "e2e-shared.gpupolicy.dev"}


@pytest.fixture
def gpu_node(
    kube: Kube,
    cleanup: Cleanup,
    kube_cluster: ControlPlane,
    kube_scheduler: Process,
    kube_controller_manager: Process,
) -> Iterator[PluginProcess]:
    """A fake 8×H100 Node with our plugin running for it, the policy's DeviceClasses installed."""
    name = f"h100-{uuid.uuid4().hex[:6]}"
    cleanup.track(create_node(kube, name, labels={"e2e-node": name}))
    for cls in policy_classes():
        cleanup.create(cls)
    proc = PluginProcess(kube_cluster, name, MIXED_POLICY)
    proc.start()
    wait_published(kube, proc)
    yield proc
    proc.close()
    for s in kube.list("resource.k8s.io/v1", "ResourceSlice", field_selector=f"spec.nodeName={name}"):
        kube.delete("resource.k8s.io/v1", "ResourceSlice", s["metadata"]["name"])


def policy_classes() -> list[Obj]:
    return [to_wire(c) for c in load_policy(MIXED_POLICY.read_text(), str(MIXED_POLICY)).device_classes]


def template(namespace: str, name: str, device_class: str) -> Obj:
    request = {"name": "gpu", "exactly": {"deviceClassName": device_class}}
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"spec": {"devices": {"requests": [request]}}},
    }


def pod(namespace: str, name: str, node: str, template_name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "nodeSelector": {"e2e-node": node},
            "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": template_name}],
            "containers": [
                {"name": "c", "image": "registry.invalid/none:0", "resources": {"claims": [{"name": "gpu"}]}}
            ],
        },
    }


def scheduled_claim(kube: Kube, namespace: str, pod_name: str) -> Obj:
    """Wait until the pod is bound and return its allocated claim."""

    def probe() -> Obj | None:
        current = kube.get("v1", "Pod", pod_name, namespace)
        if not current["spec"].get("nodeName"):
            return None
        statuses = current.get("status", {}).get("resourceClaimStatuses") or []
        claim = kube.get("resource.k8s.io/v1", "ResourceClaim", statuses[0]["resourceClaimName"], namespace)
        return claim if claim.get("status", {}).get("allocation") else None

    result: Obj = kube.wait_for(f"pod {pod_name} to be scheduled with an allocated claim", probe, timeout_s=60)
    return result


def test_scheduler_allocates_from_the_plugins_slices(kube: Kube, namespace: str, gpu_node: PluginProcess) -> None:
    node = gpu_node.node
    for kind, cls in CLASSES.items():
        kube.create(template(namespace, kind, cls))
        kube.create(pod(namespace, f"pod-{kind}", node, kind))
    for kind in CLASSES:
        claim = scheduled_claim(kube, namespace, f"pod-{kind}")
        assert kube.get("v1", "Pod", f"pod-{kind}", namespace)["spec"]["nodeName"] == node
        [result] = claim["status"]["allocation"]["devices"]["results"]
        assert (result["driver"], result["pool"]) == (DRIVER, node)
        if kind == "whole":
            assert result["device"] in {"gpu-0", "gpu-1", "gpu-2"}
        elif kind == "mig":
            assert result["device"].split("-mig-")[0] in {"gpu-3", "gpu-4", "gpu-5"}
            assert "-mig-1g10gb-" in result["device"]
        else:
            assert result["device"] in {"gpu-6", "gpu-7"}
            assert result.get("shareID"), "a multi-allocatable device gets a share ID"


def test_kubelet_stand_in_prepares_and_unprepares_over_the_socket(
    kube: Kube, namespace: str, gpu_node: PluginProcess
) -> None:
    kube.create(template(namespace, "mig", CLASSES["mig"]))
    kube.create(pod(namespace, "pod-mig", gpu_node.node, "mig"))
    claim = scheduled_claim(kube, namespace, "pod-mig")
    meta = claim["metadata"]
    ref = (namespace, meta["uid"], meta["name"])
    kubelet = FakeKubelet(gpu_node.registry_dir, DRIVER)
    try:
        prepared = kubelet.prepare([ref])
        answer = prepared.claims[meta["uid"]]
        assert answer.error == ""
        [device] = answer.devices
        allocated = claim["status"]["allocation"]["devices"]["results"][0]
        assert (device.pool_name, device.device_name) == (allocated["pool"], allocated["device"])
        assert list(device.request_names) == ["gpu"]
        assert device.cdi_device_ids
        cdi_files = [p for p in gpu_node.cdi_root.rglob("*") if p.is_file() and meta["uid"] in p.read_text()]
        assert cdi_files, f"no CDI spec mentions claim {meta['uid']}"
        checkpoint = [p for p in gpu_node.state_dir.rglob("*") if p.is_file() and meta["uid"] in p.read_text()]
        assert checkpoint, "the checkpoint does not record the prepared claim"

        again = kubelet.prepare([ref])
        assert list(again.claims[meta["uid"]].devices) == list(answer.devices), "prepare must be idempotent"

        unprepared = kubelet.unprepare([ref])
        assert unprepared.claims[meta["uid"]].error == ""
        assert not any(p.exists() for p in cdi_files)
        still = [p for p in checkpoint if p.exists() and meta["uid"] in p.read_text()]
        assert not still, f"the checkpoint still records the unprepared claim: {still}"
    finally:
        kubelet.close()


def test_one_prepare_call_for_whole_mig_and_shared_claims(kube: Kube, namespace: str, gpu_node: PluginProcess) -> None:
    """kubelet batches the claims of a pod sync: each gets its own answer; the shared device carries the shareID
    the real scheduler chose (DRA v1's ``share_id``)."""
    claims = []
    for kind, cls in CLASSES.items():
        kube.create(template(namespace, kind, cls))
        kube.create(pod(namespace, f"pod-{kind}", gpu_node.node, kind))
        claims.append(scheduled_claim(kube, namespace, f"pod-{kind}"))
    refs = [(namespace, c["metadata"]["uid"], c["metadata"]["name"]) for c in claims]
    kubelet = FakeKubelet(gpu_node.registry_dir, DRIVER)
    try:
        prepared = kubelet.prepare(refs)
        assert set(prepared.claims) == {uid for _, uid, _ in refs}
        for claim in claims:
            answer = prepared.claims[claim["metadata"]["uid"]]
            assert answer.error == "", claim["metadata"]["name"]
            [device] = answer.devices
            [allocated] = claim["status"]["allocation"]["devices"]["results"]
            assert device.device_name == allocated["device"]
            if allocated.get("shareID"):
                assert device.share_id == allocated["shareID"]
        cdi_ids = [i for a in prepared.claims.values() for d in a.devices for i in d.cdi_device_ids]
        assert len(cdi_ids) == len(set(cdi_ids)) == len(claims), "one distinct CDI device per claim"
        unprepared = kubelet.unprepare(refs)
        assert all(a.error == "" for a in unprepared.claims.values())
    finally:
        kubelet.close()
