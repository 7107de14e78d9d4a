"""Shared set-up for the controller's end-to-end tests: fresh fake H100 nodes with the first-fit-strands slices, gated
pods with claim templates, an in-process controller driven step by step, and ``gpupolicy controller run`` processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpupolicy.plugin.controller.loop import Config, Controller, StepResult
from gpupolicy.plugin.controller.placer import Settings
from gpupolicy.plugin.kube import Client
from gpupolicy.solver.result import SolveParams
from tests.e2e.conftest import Cleanup
from tests.e2e.controlplane import REPO, ControlPlane, die_with_parent, free_port
from tests.e2e.kube import Kube, Obj, create_node
from tests.e2e.test_schedule_prepare import gpu_node  # noqa: F401 (a fixture, re-exported for test_prepare)
from tests.e2e.test_scheduler_vs_solver import STRANDS, renamed_slices
from tests.scrape import Samples, scrape

GATE = "gpupolicy.dev/placement"
STRANDS_POLICY = STRANDS.policy_file()
THREE_G, FOUR_G = "mig-3g.gpupolicy.dev", "mig-4g.gpupolicy.dev"


def strands_node(kube: Kube, cleanup: Cleanup, inventory: Path) -> str:
    """A fresh fake Node with examples/first-fit-strands' one-H100 MIG pool; appends classes and slices to
    ``inventory`` (for the verifier)."""
    node = f"h100-{uuid.uuid4().hex[:6]}"
    cleanup.track(create_node(kube, node))
    slices = renamed_slices(STRANDS.slices(), node)
    classes = STRANDS.device_classes()
    for obj in classes:
        cleanup.track(kube.apply(obj))
    for obj in slices:
        cleanup.create(obj)
    old = list(yaml.safe_load_all(inventory.read_text())) if inventory.exists() else []
    kept = [o for o in old if o and o["kind"] != "DeviceClass"]
    inventory.write_text(yaml.safe_dump_all([*classes, *kept, *slices]))
    return node


def template(namespace: str, name: str, device_class: str) -> Obj:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": device_class}}]}}},
    }


def gated_pod(namespace: str, name: str, templates: list[str], group: str | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace}
    if group:
        meta["labels"] = {"gpupolicy.dev/group": group}
    claims = [{"name": f"gpu{i}", "resourceClaimTemplateName": t} for i, t in enumerate(templates)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "schedulingGates": [{"name": GATE}],
            "resourceClaims": claims,
            "containers": [
                {
                    "name": "c",
                    "image": "registry.invalid/none:0",
                    "resources": {"claims": [{"name": c["name"]} for c in claims]},
                }
            ],
        },
    }


def pod_claims(kube: Kube, namespace: str, pod: str) -> list[Obj]:
    current = kube.get("v1", "Pod", pod, namespace)
    names = [s.get("resourceClaimName") for s in (current.get("status") or {}).get("resourceClaimStatuses") or []]
    return [kube.get("resource.k8s.io/v1", "ResourceClaim", n, namespace) for n in names if n]


def bound(kube: Kube, namespace: str, pod: str) -> str | None:
    return kube.get("v1", "Pod", pod, namespace)["spec"].get("nodeName") or None


def gates(kube: Kube, namespace: str, pod: str) -> list[str]:
    return [g["name"] for g in kube.get("v1", "Pod", pod, namespace)["spec"].get("schedulingGates") or []]


def devices_in_use(kube: Kube) -> list[tuple[str, str, str]]:
    """Every (driver, pool, device) any claim's allocation holds, duplicates kept."""
    out = []
    for claim in kube.list("resource.k8s.io/v1", "ResourceClaim"):
        alloc = (claim.get("status") or {}).get("allocation") or {}
        out += [(r["driver"], r["pool"], r["device"]) for r in (alloc.get("devices") or {}).get("results") or []]
    return out


def settings(policy: Path) -> Settings:
    return Settings(policy=(policy.read_text(), str(policy)), params=SolveParams(time_limit_s=5, workers=1))


@dataclass
class Driven:
    """An in-process controller against the test bed, stepped by the test (no threads, no timing games)."""

    controller: Controller
    api: Any

    def until(self, what: str, done: Callable[[], bool], timeout_s: float = 60.0) -> list[StepResult]:
        results = []
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            results.append(self.controller.step(force=True))
            time.sleep(0.2)
        return results


@pytest.fixture
def driven(kube_cluster: ControlPlane, namespace: str) -> Iterator[Callable[..., Driven]]:
    made: list[Client] = []

    def make(policy: Path = STRANDS_POLICY, api: Any = None, identity: str = "e2e", parallel: int = 8) -> Driven:
        real = Client(kube_cluster.kubeconfig)
        made.append(real)
        wrapped = api(real) if api is not None else real
        config = Config(identity, settings(policy), write_parallelism=parallel, namespaces=(namespace,))
        return Driven(Controller(wrapped, config), wrapped)

    yield make
    for api in made:
        api.close()


@dataclass
class Replica:
    """``gpupolicy controller run`` as its own process (what a Deployment's pod runs)."""

    popen: subprocess.Popen[bytes]
    log: Path
    metrics_port: int

    def metrics(self) -> Samples:
        """Its ``/metrics`` page, parsed (``replica.metrics()("gpupolicy_controller_is_leader") == 1``)."""
        return scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=20)


@pytest.fixture
def replicas(kube_cluster: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Callable[..., Replica]]:
    started: list[Replica] = []

    def start(name: str, policy: Path = STRANDS_POLICY, *extra: str) -> Replica:
        port = free_port()
        log = tmp_path / f"controller-{name}.log"
        argv = [
            sys.executable, "-m", "gpupolicy.plugin.cli.main", "controller", "run",
            f"--kubeconfig={kube_cluster.kubeconfig}", f"--policy={policy}", f"--identity={name}",
            f"--lease-namespace={namespace}", f"--namespace={namespace}", "--lease-duration=3",
            "--batch-window=0.3", "--poll-interval=0.3",
            "--workers=1", f"--metrics-address=127.0.0.1:{port}", *extra,
        ]  # fmt: skip
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
            )
        replica = Replica(popen, log, port)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.stop()


def verify_live(inventory: Path, live: list[Obj], policy: Path) -> list[str]:
    """Our verifier (``gpupolicy.solver.verify``) on allocations read back from the API server."""
    from tests.e2e.verifyalloc import verify_scheduler

    return verify_scheduler(inventory, live, policy)
