"""Device health end to end: a fault injected into the plugin's simulated NVML becomes a device taint in the node's
ResourceSlices, the real kube-scheduler (DRADeviceTaints) then keeps new claims off that GPU, and the taint goes
away when the GPU recovers."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupolicy.policy.k8s.dump import to_wire
from gpupolicy.policy.policyfile.compile import load_policy
from tests.e2e.conftest import Cleanup
from tests.e2e.controlplane import REPO, ControlPlane, Process
from tests.e2e.kube import Kube, Obj, create_node
from tests.e2e.pluginproc import PluginProcess
from tests.e2e.test_plugin_publish import DRIVER, devices, node_slices, wait_published
from tests.e2e.test_schedule_prepare import pod, scheduled_claim, template

pytestmark = pytest.mark.testbed

WHOLE_CLASS = "e2e-whole.gpupolicy.dev"
POLICY = f"""\
apiVersion: gpupolicy.dev/v1alpha1
kind: GpuPolicy
metadata: {{name: e2e-two-whole}}
spec:
  driverName: {DRIVER}
  deviceClasses:
  - name: {WHOLE_CLASS}
    selectors:
    - cel:
        expression: device.driver == "{DRIVER}" && device.attributes["{DRIVER}"].type == "gpu"
  sharing:
  - name: whole
    exclusive: {{}}
"""


def fault(plugin: PluginProcess, gpu: int, kind: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gpupolicy.plugin.cli.main",
            "plugin",
            "fault",
            f"--state-dir={plugin.state_dir}",
            f"--gpu={gpu}",
            kind,
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )


def taints_of(kube: Kube, node: str, device: str) -> list[Obj]:
    found = devices(node_slices(kube, node)).get(device, {})
    return list(found.get("taints") or [])


@pytest.fixture
def two_gpu_node(kube: Kube, cleanup: Cleanup, kube_cluster: ControlPlane, tmp_path: Path) -> Iterator[PluginProcess]:
    name = f"h100x2-{uuid.uuid4().hex[:6]}"
    cleanup.track(create_node(kube, name, labels={"e2e-node": name}))
    for device_class in load_policy(POLICY, "e2e-two-whole").device_classes:
        cleanup.create(to_wire(device_class))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    proc = PluginProcess(kube_cluster, name, policy, nvml="sim:2xH100-80GB")
    proc.start()
    wait_published(kube, proc)
    yield proc
    proc.close()
    for s in node_slices(kube, name):
        kube.delete("resource.k8s.io/v1", "ResourceSlice", s["metadata"]["name"])


def test_a_lost_gpu_is_tainted_and_avoided_then_recovers(
    kube: Kube, namespace: str, two_gpu_node: PluginProcess, kube_scheduler: Process, kube_controller_manager: Process
) -> None:
    node = two_gpu_node.node
    fault(two_gpu_node, 0, "gpu-lost")
    kube.wait_for("gpu-0 to be tainted", lambda: taints_of(kube, node, "gpu-0"), timeout_s=30)
    [taint] = taints_of(kube, node, "gpu-0")
    assert (taint["key"], taint["effect"]) == (f"{DRIVER}/gpu-lost", "NoExecute")
    assert taints_of(kube, node, "gpu-1") == []

    kube.create(template(namespace, "whole", WHOLE_CLASS))
    kube.create(pod(namespace, "pod-whole", node, "whole"))
    claim = scheduled_claim(kube, namespace, "pod-whole")
    assert [r["device"] for r in claim["status"]["allocation"]["devices"]["results"]] == ["gpu-1"]

    fault(two_gpu_node, 0, "recovered")
    kube.wait_for("gpu-0's taint to be lifted", lambda: taints_of(kube, node, "gpu-0") == [], timeout_s=30)
