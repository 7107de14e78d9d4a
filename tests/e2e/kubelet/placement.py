"""Helpers for the placement controller on real kubelet nodes: examples/first-fit-strands' nodes and classes, pods
pinned to a test's own nodes, ``gpupolicy controller run`` as a process, and what the node did with an allocation
(CDI IDs the runtime got, the CDI spec the plugin wrote, the simulated NVML's MIG instances)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from gpupolicy.plugin.controller.snapshot import GATE
from tests.e2e.controller.conftest import Replica
from tests.e2e.controlplane import REPO, ControlPlane, die_with_parent, free_port
from tests.e2e.kube import Kube, Obj
from tests.e2e.kubelet.pods import claim_pod
from tests.e2e.node import KubeletNode
from tests.e2e.test_scheduler_vs_solver import STRANDS

DRIVER = STRANDS.driver()
STRANDS_POLICY = STRANDS.policy_file()
# examples/first-fit-strands/cluster.yaml as simulated NVML: one H100-80GB, MIG mode on, no instances yet.
STRANDS_NVML = "sim:1xH100-80GB:mig"
THREE_G, FOUR_G = "mig-3g.gpupolicy.dev", "mig-4g.gpupolicy.dev"
# gpu-0-mig-4g40gb-5-0: GPU 0, profile 4g.40gb, GPU-instance profile 5, first memory slot 0
_MIG_DEVICE = re.compile(r"^gpu-(\d+)-mig-(\d+g)(\d+gb)-(\d+)-(\d+)$")


def strands_classes(kube: Kube) -> list[Obj]:
    classes = STRANDS.device_classes()
    for device_class in classes:
        kube.apply(device_class)
    return classes


def pinned_pod(namespace: str, name: str, template: str, nodes: list[str], *, gated: bool) -> Obj:
    """A pod with one claim from ``template`` that may run on any of ``nodes`` (a required node affinity, which both
    the scheduler and the controller honour), scheduling-gated for the controller when ``gated``."""
    pod = claim_pod(namespace, name, None, template, gated_by=GATE if gated else None)
    term = {"matchExpressions": [{"key": "e2e-node", "operator": "In", "values": sorted(nodes)}]}
    pod["spec"]["affinity"] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    }
    return pod


def outcome(kube: Kube, namespace: str, pod: str) -> str | None:
    """'running', 'unschedulable' (the scheduler tried with every claim made and gave up for now), or None."""
    current = kube.get("v1", "Pod", pod, namespace)
    status = current.get("status") or {}
    if status.get("phase") == "Running":
        return "running"
    made = len(status.get("resourceClaimStatuses") or []) == len(current["spec"].get("resourceClaims") or [])
    for cond in status.get("conditions") or []:
        if cond["type"] == "PodScheduled" and cond["status"] == "False" and cond.get("reason") == "Unschedulable":
            return "unschedulable" if made and "cannot allocate all claims" in cond.get("message", "") else None
    return None


def outcomes(kube: Kube, namespace: str, pods: list[str]) -> dict[str, str] | None:
    """Each pod's ``outcome``, once every pod has one."""
    seen = {pod: outcome(kube, namespace, pod) for pod in pods}
    return {pod: str(o) for pod, o in seen.items()} if all(seen.values()) else None


def results(claim: Obj) -> list[dict[str, Any]]:
    return list((((claim.get("status") or {}).get("allocation") or {}).get("devices") or {}).get("results") or [])


def allocation_node(claim: Obj) -> str:
    terms = claim["status"]["allocation"]["nodeSelector"]["nodeSelectorTerms"]
    return str(terms[0]["matchFields"][0]["values"][0])


def mig_placement(device: str) -> tuple[int, str, int]:
    """(GPU index, profile, first memory slot) of a published dynamic MIG device name."""
    match = _MIG_DEVICE.match(device)
    assert match is not None, f"{device} is not a dynamic MIG device name"
    return int(match[1]), f"{match[2]}.{match[3]}", int(match[5])


def cdi_devices_of(node: KubeletNode, pod: Obj) -> list[list[str]]:
    """The CDI device names the runtime was given, per CreateContainer call of this very pod (by UID: an earlier
    pod of the same name has calls of its own)."""
    meta = pod["metadata"]
    return node.cdi_devices_of(meta["namespace"], meta["name"], uid=meta["uid"])


def cdi_spec_file(node: KubeletNode, claim_uid: str) -> Path:
    return node.plugin.cdi_root / f"k8s.{DRIVER}-claim_{claim_uid}.json"


def cdi_spec_files(node: KubeletNode) -> list[Path]:
    root = node.plugin.cdi_root
    return sorted(root.glob(f"k8s.{DRIVER}-claim_*.json")) if root.is_dir() else []


def resolve_cdi(node: KubeletNode, cdi_id: str) -> tuple[str, dict[str, Any]]:
    """A fully qualified CDI ID (``k8s.<driver>/claim=<uid>-<device>``) looked up as the runtime would: the spec
    file of that kind under the node's CDI root that names the device; returns (claim UID, the device's entry)."""
    kind, _, name = cdi_id.partition("=")
    assert kind == f"k8s.{DRIVER}/claim", cdi_id
    found = []
    for path in cdi_spec_files(node):
        spec = json.loads(path.read_text())
        assert spec["kind"] == kind, path
        found += [(path, d) for d in spec["devices"] if d["name"] == name]
    assert len(found) == 1, f"{cdi_id}: {len(found)} devices of that name in {cdi_spec_files(node)}"
    path, device = found[0]
    uid = path.name.removeprefix(f"k8s.{DRIVER}-claim_").removesuffix(".json")
    return uid, device


def inventory_file(kube: Kube, classes: list[Obj], nodes: list[KubeletNode], path: Path) -> Path:
    """The classes and the slices the nodes' plugins published, as the verifier's inventory."""
    names = {n.name for n in nodes}
    slices = [s for s in kube.list("resource.k8s.io/v1", "ResourceSlice") if s["spec"].get("nodeName") in names]
    assert {s["spec"]["nodeName"] for s in slices} == names, "every node published"
    path.write_text(yaml.safe_dump_all([*classes, *slices]))
    return path


@contextlib.contextmanager
def controller_process(
    plane: ControlPlane,
    namespace: str,
    log: Path,
    *,
    identity: str,
    policy: Path = STRANDS_POLICY,
    extra: tuple[str, ...] = (),
) -> Iterator[Replica]:
    """``gpupolicy controller run`` for the gated pods of ``namespace`` (its Lease there too), stopped at the end;
    ``extra``: more arguments (``--preemption``, ...)."""
    port = free_port()
    argv = [
        sys.executable, "-m", "gpupolicy.plugin.cli.main", "controller", "run",
        f"--kubeconfig={plane.kubeconfig}", f"--policy={policy}", f"--identity={identity}",
        f"--lease-namespace={namespace}", f"--namespace={namespace}", "--lease-duration=15",
        "--batch-window=0.3", "--poll-interval=0.3", "--workers=1", f"--metrics-address=127.0.0.1:{port}", *extra,
    ]  # fmt: skip
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
        )
    replica = Replica(popen, log, port)
    try:
        yield replica
    finally:
        replica.stop()
