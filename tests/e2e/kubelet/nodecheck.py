"""What the real-kubelet tests look at on a node: the CDI IDs a claim's allocation should give, the CDI specs the
plugin wrote, the simulated GPUs' MIG instances, and the plugin's and kubelet's own counters."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.controlplane import REPO
from tests.e2e.kube import Obj
from tests.e2e.node import KubeletNode
from tests.e2e.test_plugin_publish import DRIVER
from tests.scrape import Samples, scrape

CDI_KIND = f"k8s.{DRIVER}/claim"


def expected_cdi_ids(claim: Obj) -> list[str]:
    """The CDI device IDs a prepared claim's devices carry (plugin/kubelet/cdi.py: ``<kind>=<claimUID>-<device>``)."""
    uid = claim["metadata"]["uid"]
    results = claim["status"]["allocation"]["devices"]["results"]
    return sorted(f"{CDI_KIND}={uid}-{r['device']}" for r in results)


def cdi_specs(node: KubeletNode) -> dict[str, Any]:
    """Every CDI device the plugin's spec files define, by fully qualified ID."""
    out: dict[str, Any] = {}
    root = node.plugin.cdi_root
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        spec = json.loads(path.read_text())
        for device in spec.get("devices", []):
            out[f"{spec['kind']}={device['name']}"] = device
    return out


def spec_files_of(node: KubeletNode, claim_uid: str) -> list[Path]:
    root = node.plugin.cdi_root
    return [p for p in root.glob("*.json") if claim_uid in p.name] if root.is_dir() else []


@dataclass(frozen=True, order=True)
class MigInstance:
    gpu: int
    profile: str
    start: int
    gi: int
    uuid: str


def mig_instances(node: KubeletNode) -> list[MigInstance]:
    """The MIG instances the node's simulated GPUs hold now (its NVML state file), sorted."""
    state_file = node.plugin.state_dir / "sim-nvml.json"
    if not state_file.exists():
        return []
    state = json.loads(state_file.read_text())
    return sorted(
        MigInstance(gpu, inst["profile"], inst["start"], inst["gi"], inst["uuid"])
        for gpu, spec in enumerate(state["gpus"])
        for inst in spec["instances"]
    )


def fault(node: KubeletNode, gpu: int, kind: str, xid: int = 79) -> None:
    subprocess.run(
        [sys.executable, "-m", "gpupolicy.plugin.cli.main", "plugin", "fault"]
        + [f"--state-dir={node.plugin.state_dir}", f"--gpu={gpu}", f"--xid={xid}", kind],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )


def create_container_calls(node: KubeletNode, namespace: str, pod: str) -> int:
    return len(node.cdi_devices_of(namespace, pod))


def plugin_metrics(node: KubeletNode) -> Samples:
    """The plugin's own /metrics (its address is in its log)."""
    found = re.findall(r'"address": "(http://[^"]+/metrics)"', node.plugin.log(10**6))
    assert found, "the plugin did not log its metrics address"
    return scrape(found[-1])


def kubelet_prepare_calls(metrics: str) -> int:
    """How many NodePrepareResources calls the kubelet made (its gRPC histogram's count)."""
    total = 0
    for line in metrics.splitlines():
        if line.startswith("dra_grpc_operations_duration_seconds_count{") and "NodePrepareResources" in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total
