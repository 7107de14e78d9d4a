"""The Helm chart on a real node: its DaemonSet's pod runs on the kubelet, and the plugin, run with a token of the
chart's ServiceAccount bound to that pod (what the pod's projected token volume holds, no admin credentials),
publishes, registers and prepares a pod's claim; the chart's admission policy stops the same identity from writing
another node's slices.

The stand-in runtime runs nothing, so the DaemonSet's container does not really start the plugin; the test starts
it as that container would: same arguments, the pod's identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.controlplane import ControlPlane
from tests.e2e.controlplane import write_kubeconfig as write_admin_style_kubeconfig
from tests.e2e.helm import helm_template
from tests.e2e.kube import Kube, KubeError, Obj
from tests.e2e.kubelet.conftest import MakeNode
from tests.e2e.kubelet.nodecheck import expected_cdi_ids
from tests.e2e.kubelet.pods import CLASSES, claim_pod, claim_template, pod_claim, wait_running
from tests.e2e.node import KubeletNode
from tests.e2e.pluginproc import MIXED_POLICY
from tests.e2e.test_helm_chart import RELEASE, slice_for
from tests.e2e.test_plugin_publish import DRIVER, complete_pool, node_slices

pytestmark = [pytest.mark.testbed, pytest.mark.kubelet]


def chart_objects(helm: Path, node: KubeletNode, namespace: str, workdir: Path) -> list[Obj]:
    values = {
        "driverName": DRIVER,
        "policy": MIXED_POLICY.read_text(),
        "plugin": {
            # Helm merges maps with the chart's defaults: null drops the default GPU-node label.
            "nodeSelector": {"e2e-node": node.name, "nvidia.com/gpu.present": None},
            "kubeletPluginsDir": str(node.plugin.plugin_dir),
            "kubeletRegistryDir": str(node.plugin.registry_dir),
            "cdiRoot": str(node.plugin.cdi_root),
            "nvml": node.nvml,
            "nvmlFrom": "none",  # simulated GPUs: no driver libraries from the host
        },
        # The controller's half is tests/e2e/test_chart_install.py; here its pods would land on this node.
        "controller": {"enabled": False},
        "placementOptIn": {"enabled": False},
    }
    return helm_template(helm, RELEASE, namespace, values, workdir)


def pod_token(kube: Kube, namespace: str, service_account: str, pod: Obj) -> str:
    """A token of ``service_account`` bound to ``pod``, as the kubelet puts in the pod's projected volume."""
    review = kube.raw(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 3600,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
                                   "uid": pod["metadata"]["uid"]},
            },
        },
    )  # fmt: skip
    return str(review["status"]["token"])


def test_the_charts_identity_is_enough_to_run_the_plugin_on_a_real_node_and_no_more(
    node_kube: Kube,
    node_plane: ControlPlane,
    make_node: MakeNode,
    mixed_classes: list[str],
    node_namespace: str,
    tmp_path: Path,
) -> None:
    node = make_node(start=False)
    node.start_cri()
    node.start_kubelet()
    node.wait_ready(node_kube)
    node.plugin.registry_dir.mkdir(parents=True, exist_ok=True)
    objects = chart_objects(node_plane.bin_dir / "helm", node, node_namespace, tmp_path)
    applied = []
    try:
        for obj in objects:
            if obj["kind"] != "DeviceClass":  # the session installed the same policy's classes
                applied.append(node_kube.apply(obj, namespace=node_namespace))
        [daemonset] = [o for o in objects if o["kind"] == "DaemonSet"]
        service_account = daemonset["spec"]["template"]["spec"]["serviceAccountName"]

        def plugin_pod() -> Obj | None:
            pods = node_kube.list("v1", "Pod", node_namespace)
            running = [p for p in pods if p["status"].get("phase") == "Running"]
            return running[0] if running else None

        try:
            pod = node_kube.wait_for("the chart's plugin pod Running on the node", plugin_pod, timeout_s=90)
        except AssertionError:
            ds = node_kube.get("apps/v1", "DaemonSet", daemonset["metadata"]["name"], node_namespace).get("status")
            events = [(e.get("reason"), e.get("message")) for e in node_kube.list("v1", "Event", node_namespace)]
            raise AssertionError(f"no plugin pod Running; DaemonSet status {ds}, events {events}") from None
        assert pod["spec"]["nodeName"] == node.name

        kubeconfig = tmp_path / "plugin-kubeconfig"
        token = pod_token(node_kube, node_namespace, service_account, pod)
        write_admin_style_kubeconfig(kubeconfig, node_plane.server, node_plane.ca_file, token)
        node.plugin.kubeconfig = kubeconfig
        node.plugin.start()
        node.wait_plugin_registered(DRIVER)
        node_kube.wait_for(
            "the plugin's pool published with the chart's identity",
            lambda: complete_pool(node_slices(node_kube, node.name)),
            timeout_s=60,
        )

        node_kube.create(claim_template(node_namespace, "mig", CLASSES["mig"]))
        node_kube.create(claim_pod(node_namespace, "pod-mig", node.name, "mig"))
        running = wait_running(node_kube, node_namespace, "pod-mig")
        [given] = node.cdi_devices_of(node_namespace, "pod-mig")
        assert sorted(given) == expected_cdi_ids(pod_claim(node_kube, node_namespace, running))

        log = node.plugin.log(10**6)
        # "403 Forbidden: ... is forbidden" (a bare "403" also matches timestamps such as 01:47:03.403Z)
        refused = [line for line in log.splitlines() if "forbidden" in line.lower()]
        assert refused == [], "the chart's RBAC refused a request of the plugin:\n" + "\n".join(refused[:5])

        as_plugin = Kube.connect(node_plane.server, token, node_plane.ca_file, tmp_path / "discovery.json")
        try:
            with pytest.raises(KubeError) as denied:
                as_plugin.create(slice_for(f"{node.name}-other", DRIVER))
            assert denied.value.status in (403, 422)
            assert f"may not modify ResourceSlices of node '{node.name}-other'" in denied.value.message
            with pytest.raises(KubeError) as secrets:
                as_plugin.list("v1", "Secret", node_namespace)
            assert secrets.value.status == 403
        finally:
            as_plugin.close()
    finally:
        node.plugin.stop()
        for obj in reversed(applied):
            meta = obj["metadata"]
            try:
                node_kube.delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
            except KubeError as exc:
                print(json.dumps({"cleanup": meta["name"], "error": str(exc)}))
