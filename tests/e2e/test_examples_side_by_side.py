"""Scenario 4 over every example: the example's claims arrive one at a time at the real kube-scheduler (templates
through the real claim controller), on fake Nodes carrying the slices the example's policy publishes. Our
verifier accepts every allocation the scheduler made; ``gpupolicy solve`` on the same inputs places at least as
many claims; both counts (claims placed, GPUs used) are printed and recorded as test properties."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Cleanup
from tests.e2e.controlplane import Process
from tests.e2e.examples import Example, examples, run_cli
from tests.e2e.kube import Kube, Obj, create_namespace, create_node
from tests.e2e.verifyalloc import verify_scheduler

pytestmark = pytest.mark.testbed

EXAMPLES = examples()
RUN_LABEL = "e2e-run"
CLAIM = ("resource.k8s.io/v1", "ResourceClaim")


def moved_slices(slices: list[Obj], suffix: str) -> list[Obj]:
    """The example's slices on nodes renamed ``<node>-<suffix>``, so runs never share devices or nodes."""
    out = []
    for wire in slices:
        moved = copy.deepcopy(wire)
        old = moved["spec"]["nodeName"]
        new = f"{old}-{suffix}"
        moved["metadata"]["name"] = new + moved["metadata"]["name"][len(old) :]
        moved["metadata"].pop("ownerReferences", None)
        moved["spec"]["nodeName"] = new
        moved["spec"]["pool"]["name"] = new
        out.append(moved)
    return out


def wrapper_pod(claim: Obj) -> Obj:
    meta = claim["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"pod-{meta['name']}", "namespace": meta["namespace"]},
        "spec": {
            "resourceClaims": [{"name": "c", "resourceClaimName": meta["name"]}],
            "containers": [{"name": "c", "image": "registry.invalid/none:0", "resources": {"claims": [{"name": "c"}]}}],
        },
    }


def arrivals(example: Example, suffix: str) -> list[Obj]:
    """The example's objects in file order, namespaces renamed; every bare claim gets a pod of its own right
    after it (the scheduler allocates only claims that a pod uses); pods run only on this run's nodes."""
    workloads = [copy.deepcopy(o) for o in example.workloads()]
    for obj in workloads:
        obj["metadata"]["namespace"] = f"{obj['metadata'].get('namespace', 'default')}-{suffix}"
    used = {
        (p["metadata"]["namespace"], rc.get("resourceClaimName"))
        for p in workloads
        if p["kind"] == "Pod"
        for rc in p["spec"].get("resourceClaims") or []
    }
    out: list[Obj] = []
    for obj in workloads:
        if obj["kind"] == "Pod":
            obj["spec"]["nodeSelector"] = {RUN_LABEL: suffix}
        out.append(obj)
        if obj["kind"] == "ResourceClaim" and (obj["metadata"]["namespace"], obj["metadata"]["name"]) not in used:
            pod = wrapper_pod(obj)
            pod["spec"]["nodeSelector"] = {RUN_LABEL: suffix}
            out.append(pod)
    return out


def decided(kube: Kube, pod: Obj) -> str | None:
    """'bound', 'stranded' (the DRA plugin cannot allocate its claims), or None while undecided."""
    current = kube.get("v1", "Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])
    if current["spec"].get("nodeName"):
        return "bound"
    for cond in current.get("status", {}).get("conditions") or []:
        if cond["type"] == "PodScheduled" and "cannot allocate all claims" in (cond.get("message") or ""):
            return "stranded"
    return None


def wait_decided(kube: Kube, pod: Obj) -> str:
    outcome: str = kube.wait_for(f"the scheduler to decide {pod['metadata']['name']}", lambda: decided(kube, pod))
    return outcome


def pod_claims(kube: Kube, pod: Obj) -> list[Obj]:
    current = kube.get("v1", "Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])
    names = {
        s["name"]: s.get("resourceClaimName") for s in current.get("status", {}).get("resourceClaimStatuses") or []
    }
    out = []
    for ref in current["spec"].get("resourceClaims") or []:
        name = ref.get("resourceClaimName") or names.get(ref["name"])
        assert name, f"pod {pod['metadata']['name']}: no claim for {ref['name']}"
        out.append(kube.get(*CLAIM, str(name), pod["metadata"]["namespace"]))
    return out


def gpus_used(claims: list[Obj]) -> int:
    parents = set()
    for claim in claims:
        for r in ((claim.get("status") or {}).get("allocation") or {}).get("devices", {}).get("results", []):
            parents.add((r["pool"], r["device"].split("-mig-")[0]))
    return len(parents)


def solve_summary(inventory: Path, claims: Path) -> dict[str, Any]:
    out = run_cli(
        "solve", "--inventory", str(inventory), "--claims", str(claims), "-o", "json", "--no-timing",
        "--workers", "1", "--seed", "1", "--time-limit", "20",
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    summary: dict[str, Any] = json.loads(out.stdout)["summary"]
    return summary


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_scheduler_and_solver_side_by_side(
    kube: Kube,
    cleanup: Cleanup,
    example: Example,
    kube_scheduler: Process,
    kube_controller_manager: Process,
    tmp_path: Path,
    record_property: Any,
) -> None:
    suffix = uuid.uuid4().hex[:5]
    slices, classes = moved_slices(example.slices(), suffix), example.device_classes()
    for node in sorted({s["spec"]["nodeName"] for s in slices}):
        cleanup.track(create_node(kube, node, labels={RUN_LABEL: suffix}))
    for obj in [*classes, *slices]:
        cleanup.create(obj)
    objects = arrivals(example, suffix)
    for namespace in sorted({o["metadata"]["namespace"] for o in objects}):
        cleanup.track(create_namespace(kube, namespace))

    live: list[Obj] = []
    for obj in objects:  # one at a time, each pod decided before the next object arrives
        cleanup.create(obj)
        if obj["kind"] == "Pod":
            wait_decided(kube, obj)
            live += pod_claims(kube, obj)
    live = [kube.get(*CLAIM, c["metadata"]["name"], c["metadata"]["namespace"]) for c in live]
    placed = [c for c in live if (c.get("status") or {}).get("allocation")]

    inventory, claims_file = tmp_path / "inventory.yaml", tmp_path / "claims.yaml"
    inventory.write_text(yaml.safe_dump_all([*classes, *slices]))
    claims_file.write_text(yaml.safe_dump_all(objects))
    solver = solve_summary(inventory, claims_file)

    record_property("claims", len(live))
    record_property("scheduler_placed", len(placed))
    record_property("scheduler_gpus_used", gpus_used(placed))
    record_property("solver_placed", solver["placed"])
    record_property("solver_gpus_used", solver["gpus"]["fullyUsed"] + solver["gpus"]["partlyUsed"])
    print(
        f"\n{example.name}: kube-scheduler placed {len(placed)}/{len(live)} claims on {gpus_used(placed)} GPU(s); "
        f"gpupolicy solve placed {solver['placed']}/{solver['claims']} on "
        f"{solver['gpus']['fullyUsed'] + solver['gpus']['partlyUsed']} GPU(s)"
    )
    policy_findings = verify_scheduler(inventory, live, example.policy_file())
    record_property("scheduler_policy_violations", len(policy_findings))
    print("  against the policy (the scheduler does not know it):", policy_findings or "no violation")
    assert solver["claims"] == len(live), "both saw the same claims"
    assert verify_scheduler(inventory, live) == []
    assert solver["placed"] >= len(placed)
