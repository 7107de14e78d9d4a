"""The objects each ``examples/<name>/`` scenario yields: its policy's DeviceClasses, the ResourceSlices the policy
publishes for its cluster description, and its claims, templates and pods as written."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from gpupolicy.policy.cluster import load_cluster
from gpupolicy.policy.k8s.dump import to_wire
from gpupolicy.policy.policyfile.compile import load_policy
from tests.e2e.controlplane import REPO
from tests.e2e.kube import Obj

EXAMPLES_DIR = REPO / "examples"
WORKLOAD_KINDS = ("ResourceClaim", "ResourceClaimTemplate", "Pod")


@dataclass(frozen=True)
class Example:
    name: str
    path: Path

    def policy_file(self) -> Path:
        return self.path / "policy.yaml"

    def cluster_file(self) -> Path:
        return self.path / "cluster.yaml"

    def driver(self) -> str:
        return load_policy(self.policy_file().read_text(), str(self.policy_file())).driver_name

    def device_classes(self) -> list[Obj]:
        policy = load_policy(self.policy_file().read_text(), str(self.policy_file()))
        return [to_wire(c) for c in policy.device_classes]

    def slices(self) -> list[Obj]:
        policy = load_policy(self.policy_file().read_text(), str(self.policy_file()))
        cluster = load_cluster(self.cluster_file().read_text(), str(self.cluster_file()))
        return [to_wire(s) for s in cluster.slices(policy.publish_for, driver=policy.driver_name)]

    def workloads(self) -> list[Obj]:
        """Every pending claim, template and pod in the example's YAML files (``kind: List`` expanded), in file
        order. What an example shows as already running (claims with ``status.allocation``, pods bound to a node,
        as in examples/preemption) is left out: the scheduler cannot be given it as it is."""
        out: list[Obj] = []
        for path in sorted(self.path.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                items = doc.get("items", []) if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
                out += [d for d in items if isinstance(d, dict) and d.get("kind") in WORKLOAD_KINDS and not _running(d)]
        return out


def _running(obj: Obj) -> bool:
    if obj.get("kind") == "Pod":
        return bool((obj.get("spec") or {}).get("nodeName"))
    return bool((obj.get("status") or {}).get("allocation"))


def examples() -> list[Example]:
    if not EXAMPLES_DIR.is_dir():
        return []
    return [Example(p.name, p) for p in sorted(EXAMPLES_DIR.iterdir()) if p.is_dir() and (p / "policy.yaml").is_file()]


def cli_has(subcommand: str) -> bool:
    """Whether ``gpupolicy <subcommand>`` is registered (other parts of the project land over time)."""
    proc = subprocess.run(
        [sys.executable, "-m", "gpupolicy.plugin.cli.main", subcommand, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode == 0


def run_cli(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpupolicy.plugin.cli.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def yaml_objects(text: str) -> list[Obj]:
    out: list[Obj] = []
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "List":
            out += doc.get("items") or []
        elif isinstance(doc, dict):
            out.append(doc)
    return out
