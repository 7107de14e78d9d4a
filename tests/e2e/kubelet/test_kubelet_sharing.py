"""Time-slicing and MPS under a real kubelet: two pods on one time-sliced GPU and two on one MPS GPU go Running with
exactly their allocations' CDI devices; prepare set the GPU's time slice and started an MPS control daemon (the
simulated tools' state), the MPS devices carry the daemon's pipe; deleting the pods resets the time slice and stops
the daemon."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.kube import Kube, Obj
from tests.e2e.kubelet.conftest import SHARING_POLICY, MakeNode
from tests.e2e.kubelet.nodecheck import cdi_specs, expected_cdi_ids
from tests.e2e.kubelet.pods import claim_pod, claim_template, delete_and_wait_gone, pod_claim, wait_running
from tests.e2e.node import KubeletNode

pytestmark = [pytest.mark.testbed, pytest.mark.kubelet]

TIMESLICED, MPS = "e2e-timesliced.gpupolicy.dev", "e2e-mps.gpupolicy.dev"
SHORT = 1  # nvidia-smi compute-policy --set-timeslice value of "Short"


def tools_state(node: KubeletNode) -> dict[str, Any]:
    """What the simulated nvidia-smi and nvidia-cuda-mps-control were told (time slice per GPU, MPS daemons)."""
    path = node.plugin.state_dir / "sim-commands.json"
    return json.loads(path.read_text()) if path.exists() else {"timeslice": {}, "mps": {}}


def allocated(claim: Obj) -> Obj:
    [result] = claim["status"]["allocation"]["devices"]["results"]
    return dict(result)


def test_time_sliced_and_mps_pods_share_their_gpus_and_leave_nothing_behind(
    node_kube: Kube, make_node: MakeNode, sharing_classes: list[str], node_namespace: str
) -> None:
    node = make_node(policy=SHARING_POLICY, nvml="sim:8xH100-80GB")
    pods = {"ts-a": TIMESLICED, "ts-b": TIMESLICED, "mps-a": MPS, "mps-b": MPS}
    for name, device_class in pods.items():
        node_kube.create(claim_template(node_namespace, name, device_class))
        node_kube.create(claim_pod(node_namespace, name, node.name, name))
    claims = {
        name: pod_claim(node_kube, node_namespace, wait_running(node_kube, node_namespace, name)) for name in pods
    }

    specs = cdi_specs(node)
    for name, claim in claims.items():
        [given] = node.cdi_devices_of(node_namespace, name)
        assert sorted(given) == expected_cdi_ids(claim), name
        assert all(cdi_id in specs for cdi_id in given), name
    shares = [allocated(c) for c in claims.values()]
    assert all(r.get("shareID") for r in shares), "multi-allocatable devices get share IDs"
    assert len({r["shareID"] for r in shares}) == len(shares)

    state = tools_state(node)
    assert set(state["timeslice"].values()) == {SHORT}, state["timeslice"]
    assert len(state["timeslice"]) == len({allocated(claims[n])["device"] for n in ("ts-a", "ts-b")})
    assert state["mps"], "no MPS control daemon was started"
    for name in ("mps-a", "mps-b"):
        [cdi_id] = expected_cdi_ids(claims[name])
        edits = specs[cdi_id]["containerEdits"]
        env = dict(e.split("=", 1) for e in edits.get("env", []))
        assert env.get("CUDA_MPS_PIPE_DIRECTORY"), f"{name}: no MPS pipe in {edits}"
        assert any(m["containerPath"] == env["CUDA_MPS_PIPE_DIRECTORY"] for m in edits.get("mounts", [])), edits

    for name in pods:
        delete_and_wait_gone(node_kube, node_namespace, name)
    node_kube.wait_for("time slices reset and MPS daemons stopped", lambda: tools_state(node) == {
        "timeslice": {}, "mps": {}}, timeout_s=30)  # fmt: skip
    assert cdi_specs(node) == {}
