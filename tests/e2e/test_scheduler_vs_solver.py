"""Scenario 4: the same claims placed by the real kube-scheduler (first-fit, one claim at a time) and by
``gpupolicy solve``. Our verifier accepts the scheduler's allocation; our first-fit baseline reproduces it device for
device; and on ``examples/first-fit-strands`` the scheduler strands a claim that the solver places."""

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
from tests.e2e.examples import EXAMPLES_DIR, Example, run_cli
from tests.e2e.kube import Kube, Obj, create_node
from tests.e2e.verifyalloc import verify_scheduler

pytestmark = pytest.mark.testbed

STRANDS = Example("first-fit-strands", EXAMPLES_DIR / "first-fit-strands")


def claims_in(example: Example, namespace: str) -> list[Obj]:
    out = []
    for obj in example.workloads():
        if obj["kind"] == "ResourceClaim":
            claim = copy.deepcopy(obj)
            claim["metadata"]["namespace"] = namespace
            out.append(claim)
    return out


def pod_for(claim: Obj, node: str) -> Obj:
    meta = claim["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"pod-{meta['name']}", "namespace": meta["namespace"]},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "resourceClaims": [{"name": "gpu", "resourceClaimName": meta["name"]}],
            "containers": [
                {"name": "c", "image": "registry.invalid/none:0", "resources": {"claims": [{"name": "gpu"}]}}
            ],
        },
    }


def scheduling_outcome(kube: Kube, namespace: str, pod: str) -> str | None:
    """'bound', 'unschedulable', or None while the scheduler has not decided yet."""
    current = kube.get("v1", "Pod", pod, namespace)
    if current["spec"].get("nodeName"):
        return "bound"
    for cond in current.get("status", {}).get("conditions") or []:
        if cond["type"] == "PodScheduled" and cond["status"] == "False" and cond.get("reason") == "Unschedulable":
            return "unschedulable"
    return None


def wait_decided(kube: Kube, namespace: str, claim: Obj) -> str:
    pod = f"pod-{claim['metadata']['name']}"
    outcome: str = kube.wait_for(f"the scheduler to decide {pod}", lambda: scheduling_outcome(kube, namespace, pod))
    return outcome


def allocations(claims: list[Obj]) -> dict[str, list[tuple[str, str]]]:
    """claim name -> [(pool, device)] for the claims that are allocated."""
    out = {}
    for claim in claims:
        allocation = (claim.get("status") or {}).get("allocation")
        if allocation:
            out[claim["metadata"]["name"]] = [(r["pool"], r["device"]) for r in allocation["devices"]["results"]]
    return out


def gpus_used(placed: dict[str, list[tuple[str, str]]]) -> int:
    return len({(pool, device.split("-mig-")[0]) for results in placed.values() for pool, device in results})


def solve_json(example: Example, inventory: Path, claims: Path, *extra: str) -> dict[str, Any]:
    out = run_cli(
        "solve", "--inventory", str(inventory), "--claims", str(claims), "--policy", str(example.policy_file()),
        "-o", "json", "--no-timing", "--workers", "1", "--seed", "1", *extra,
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def renamed_slices(slices: list[Obj], node: str) -> list[Obj]:
    """The example's one-node slices moved onto ``node`` (a fresh node per test, so tests never share devices)."""
    out = []
    for wire in slices:
        moved = copy.deepcopy(wire)
        old = moved["spec"]["nodeName"]
        moved["metadata"]["name"] = moved["metadata"]["name"].replace(old, node, 1)
        moved["metadata"].pop("ownerReferences", None)
        moved["spec"]["nodeName"] = node
        moved["spec"]["pool"]["name"] = node
        out.append(moved)
    return out


@pytest.fixture
def published(kube: Kube, cleanup: Cleanup, tmp_path: Path) -> tuple[str, Path]:
    """The example's DeviceClasses, and its ResourceSlices on a fresh fake Node; returns (node, inventory file)."""
    node = f"h100-{uuid.uuid4().hex[:6]}"
    cleanup.track(create_node(kube, node))
    slices, classes = renamed_slices(STRANDS.slices(), node), STRANDS.device_classes()
    assert len({s["spec"]["nodeName"] for s in slices}) == 1
    for obj in [*classes, *slices]:
        cleanup.create(obj)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump_all([*classes, *slices]))
    return node, inventory


def test_scheduler_strands_a_claim_the_solver_places(
    kube: Kube,
    cleanup: Cleanup,
    namespace: str,
    published: tuple[str, Path],
    kube_scheduler: Process,
    tmp_path: Path,
    record_property: Any,
) -> None:
    node, inventory = published
    claims = claims_in(STRANDS, namespace)
    for claim in claims:  # in arrival order, each decided before the next arrives
        cleanup.create(claim)
        cleanup.create(pod_for(claim, node))
        wait_decided(kube, namespace, claim)
    live = [kube.get("resource.k8s.io/v1", "ResourceClaim", c["metadata"]["name"], namespace) for c in claims]
    by_scheduler = allocations(live)

    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(yaml.safe_dump_all(claims))
    solved = solve_json(STRANDS, inventory, claims_file, "--compare", "first-fit")
    by_solver = allocations(solved["claims"])
    by_first_fit = allocations(solve_json(STRANDS, inventory, claims_file, "--strategy", "first-fit")["claims"])

    record_property("scheduler_claims_placed", len(by_scheduler))
    record_property("scheduler_gpus_used", gpus_used(by_scheduler))
    record_property("solver_claims_placed", len(by_solver))
    record_property("solver_gpus_used", gpus_used(by_solver))
    print(f"\nscenario 4 ({STRANDS.name}): kube-scheduler placed {len(by_scheduler)}/{len(claims)} claims on "
          f"{gpus_used(by_scheduler)} GPU(s); gpupolicy solve placed {len(by_solver)}/{len(claims)} on "
          f"{gpus_used(by_solver)} GPU(s)")  # fmt: skip

    assert len(by_scheduler) == len(claims) - 1, "first-fit strands exactly one claim here"
    assert len(by_solver) == len(claims) and solved["unplaced"] == []
    assert by_first_fit == by_scheduler, "our first-fit baseline must match the real allocator device for device"
    assert solved["compare"]["first-fit"]["summary"]["placed"] == len(by_scheduler)

    assert verify_scheduler(inventory, live, STRANDS.policy_file()) == []


def test_verifier_rejects_a_tampered_scheduler_allocation(
    kube: Kube, cleanup: Cleanup, namespace: str, published: tuple[str, Path], kube_scheduler: Process
) -> None:
    """The check above can fail: the same allocation moved onto a device its class does not select is refused."""
    node, inventory = published
    claims = claims_in(STRANDS, namespace)
    first = claims[0]
    cleanup.create(first)
    cleanup.create(pod_for(first, node))
    wait_decided(kube, namespace, first)

    live = kube.get("resource.k8s.io/v1", "ResourceClaim", first["metadata"]["name"], namespace)
    assert verify_scheduler(inventory, [live], STRANDS.policy_file()) == []
    tampered = copy.deepcopy(live)
    tampered["status"]["allocation"]["devices"]["results"][0]["device"] = "gpu-0-mig-4g40gb-5-0"
    assert verify_scheduler(inventory, [tampered], STRANDS.policy_file()) != []
