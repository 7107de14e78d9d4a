"""Scenario 5: ``gpupolicy solve --kubeconfig FILE`` reads the live ResourceSlices, the pending ResourceClaims and the
existing allocations from the cluster instead of files (a dry run against a running cluster): pending claims are placed
around what the scheduler already allocated, a gated Pod's template claim is generated and placed, extra ``--claims``
files are placed against the live state, the output has the shape of a file-based solve, and nothing is written.

Runs once ``gpupolicy solve`` has a ``--kubeconfig`` option; until then it is skipped with that reason."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Cleanup
from tests.e2e.controlplane import ControlPlane, Process
from tests.e2e.examples import run_cli
from tests.e2e.kube import Kube, create_node
from tests.e2e.test_scheduler_vs_solver import STRANDS, claims_in, pod_for, renamed_slices, solve_json, wait_decided

pytestmark = pytest.mark.testbed


def solve_has_kubeconfig() -> bool:
    out = run_cli("solve", "--help")
    return out.returncode == 0 and "--kubeconfig" in out.stdout


needs_live_solve = pytest.mark.skipif(
    not solve_has_kubeconfig(),
    reason="`gpupolicy solve --kubeconfig` is not implemented yet (solver issue, scenario 5)",
)


def live_solve(plane: ControlPlane, namespace: str, *extra: str) -> dict[str, Any]:
    # The control plane is shared by the whole session and has no namespace controller, so other tests'
    # pending claims linger: place only this test's namespace (allocations everywhere still count).
    out = run_cli(
        "solve", "--kubeconfig", str(plane.kubeconfig), "--namespace", namespace,
        "--policy", str(STRANDS.policy_file()),
        "-o", "json", "--no-timing", "--workers", "1", "--seed", "1", *extra,
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def outcome(result: dict[str, Any], namespace: str) -> tuple[dict[str, str], set[str]]:
    """(placed claim -> device, unplaced claims) for the claims of ``namespace``."""
    placed = {
        c["metadata"]["name"]: c["status"]["allocation"]["devices"]["results"][0]["device"]
        for c in result["claims"]
        if c["metadata"]["namespace"] == namespace and (c.get("status") or {}).get("allocation")
    }
    unplaced = {u["claim"].split("/", 1)[1] for u in result["unplaced"] if u["claim"].startswith(f"{namespace}/")}
    return placed, unplaced


@needs_live_solve
def test_live_solve_reads_slices_pending_claims_and_allocations(
    kube: Kube,
    cleanup: Cleanup,
    namespace: str,
    kube_cluster: ControlPlane,
    kube_scheduler: Process,
    tmp_path: Path,
) -> None:
    node = f"h100-{uuid.uuid4().hex[:6]}"
    cleanup.track(create_node(kube, node))
    published = [*STRANDS.device_classes(), *renamed_slices(STRANDS.slices(), node)]
    for obj in published:
        cleanup.create(obj)
    three_g, four_g = claims_in(STRANDS, namespace)
    cleanup.create(three_g)
    cleanup.create(four_g)

    # Both pending: the solver, seeing them together, places both on the live slices.
    live = live_solve(kube_cluster, namespace)
    placed, unplaced = outcome(live, namespace)
    assert set(placed) == {"a-three-g", "b-four-g"} and not unplaced
    assert all(device.startswith("gpu-0-mig-") for device in placed.values())
    # The same objects given as files: the same placement, in the same output shape.
    inventory, claims_file = tmp_path / "inventory.yaml", tmp_path / "claims.yaml"
    inventory.write_text(yaml.safe_dump_all(published))
    claims_file.write_text(yaml.safe_dump_all([three_g, four_g]))
    from_files = solve_json(STRANDS, inventory, claims_file)
    assert outcome(from_files, namespace) == (placed, unplaced)
    assert set(live) == set(from_files) and set(live["summary"]) == set(from_files["summary"])
    mine = [c for c in live["claims"] if c["metadata"]["namespace"] == namespace]
    assert sorted(set(c) for c in mine) == sorted(set(c) for c in from_files["claims"])

    # The scheduler allocates the 3g claim first-fit (memory slots 0-3); a live solve must respect that allocation.
    cleanup.create(pod_for(three_g, node))
    wait_decided(kube, namespace, three_g)
    placed, unplaced = outcome(live_solve(kube_cluster, namespace), namespace)
    assert "b-four-g" in unplaced
    assert "b-four-g" not in placed

    held = kube.get("resource.k8s.io/v1", "ResourceClaim", "a-three-g", namespace)["status"]["allocation"]
    held_device = held["devices"]["results"][0]["device"]

    # A gated Pod whose claim comes from a template: the claim is generated (or read, once kube-controller-manager
    # made it) and placed in the slots the scheduler left free.
    template = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": "t-three-g", "namespace": namespace},
        "spec": {"spec": copy.deepcopy(three_g["spec"])},
    }
    cleanup.create(template)
    gated = pod_for(three_g, node)
    gated["metadata"]["name"] = "gated"
    gated["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "t-three-g"}]
    gated["spec"]["schedulingGates"] = [{"name": "example.com/hold"}]
    cleanup.create(gated)
    placed, unplaced = outcome(live_solve(kube_cluster, namespace), namespace)
    from_template = [name for name in placed if name.startswith("gated-gpu")]
    assert len(from_template) == 1 and "b-four-g" in unplaced
    assert placed[from_template[0]] not in (held_device, "") and placed[from_template[0]].startswith("gpu-0-mig-3g")

    # A hypothetical claim from a file competes with the live ones for the one free 3g slot: one of them is placed,
    # never on the device the scheduler allocated.
    extra = copy.deepcopy(three_g)
    extra["metadata"]["name"] = "c-extra"
    extra_file = tmp_path / "extra.yaml"
    extra_file.write_text(yaml.safe_dump(extra))
    placed, unplaced = outcome(live_solve(kube_cluster, namespace, "--claims", str(extra_file)), namespace)
    contenders = {"c-extra", *from_template}
    assert len(contenders & set(placed)) == 1 and len(contenders & unplaced) == 1
    assert held_device not in [placed[name] for name in contenders & set(placed)]

    # A dry run: nothing was written to the cluster.
    after = {c["metadata"]["name"]: c for c in kube.list("resource.k8s.io/v1", "ResourceClaim", namespace)}
    assert "c-extra" not in after
    assert after["a-three-g"]["status"]["allocation"] == held
    assert not (after["b-four-g"].get("status") or {}).get("allocation")
    assert all(not (c.get("status") or {}).get("allocation") for n, c in after.items() if n.startswith("gated-gpu"))


@needs_live_solve
def test_live_solve_reads_claims_made_from_templates(
    kube: Kube,
    cleanup: Cleanup,
    namespace: str,
    kube_cluster: ControlPlane,
    kube_controller_manager: Process,
) -> None:
    """With the resource-claim controller running, a gated Pod's template claim exists under a generated name: the
    live solve places that claim (found through the pod's status), and generates no second one."""
    node = f"h100-{uuid.uuid4().hex[:6]}"
    cleanup.track(create_node(kube, node))
    for obj in [*STRANDS.device_classes(), *renamed_slices(STRANDS.slices(), node)]:
        cleanup.create(obj)
    three_g, _ = claims_in(STRANDS, namespace)
    cleanup.create(
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaimTemplate",
            "metadata": {"name": "t-three-g", "namespace": namespace},
            "spec": {"spec": copy.deepcopy(three_g["spec"])},
        }
    )
    gated = pod_for(three_g, node)
    gated["metadata"]["name"] = "gated"
    gated["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "t-three-g"}]
    gated["spec"]["schedulingGates"] = [{"name": "example.com/hold"}]
    cleanup.create(gated)

    def made() -> str | None:
        statuses = kube.get("v1", "Pod", "gated", namespace).get("status", {}).get("resourceClaimStatuses") or []
        return next((str(s["resourceClaimName"]) for s in statuses if s.get("resourceClaimName")), None)

    claim_name: str = kube.wait_for("kube-controller-manager to make the gated pod's claim", made)
    assert claim_name != "gated-gpu"
    placed, unplaced = outcome(live_solve(kube_cluster, namespace), namespace)
    assert set(placed) == {claim_name} and not unplaced
    assert placed[claim_name].startswith("gpu-0-mig-3g")


@needs_live_solve
def test_live_read_for_disruption_sees_holders_and_budgets(
    kube: Kube, cleanup: Cleanup, namespace: str, kube_cluster: ControlPlane
) -> None:
    """Issue 17's input side against the real API server: a pod bound to a node holds an allocated claim
    (``status.reservedFor``) and a PodDisruptionBudget selects it. Read for disruption, the claim is a preemption
    candidate counted against the budget, which allows nothing while its status is older than its spec; a plain
    read never lists budgets. Every bound pod of the shared control plane is read by the strict loaders too."""
    from gpupolicy.plugin.cli.live import read_cluster
    from gpupolicy.solver.inputs import read_inputs
    from gpupolicy.solver.problem import Disruption, Eviction

    node = f"h100-{uuid.uuid4().hex[:6]}"
    cleanup.track(create_node(kube, node))
    slices = renamed_slices(STRANDS.slices(), node)
    for obj in [*STRANDS.device_classes(), *slices]:
        cleanup.create(obj)
    three_g, _ = claims_in(STRANDS, namespace)
    claim = cleanup.create(three_g)
    holder = pod_for(three_g, node)
    holder["metadata"]["labels"] = {"app": "train"}
    holder["spec"]["nodeName"] = node
    holder = cleanup.create(holder)
    device = next(d["name"] for s in slices for d in s["spec"].get("devices") or () if "mig-3g" in d["name"])
    claim["status"] = {
        "allocation": {
            "devices": {
                "results": [{"request": "mig", "driver": slices[0]["spec"]["driver"], "pool": node, "device": device}]
            }
        },
        "reservedFor": [{"resource": "pods", "name": holder["metadata"]["name"], "uid": holder["metadata"]["uid"]}],
    }
    kube.replace_status(claim)
    cleanup.create(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "train", "namespace": namespace},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "train"}}},
        }
    )

    live = read_cluster(str(kube_cluster.kubeconfig), namespace, disruption=True)
    inputs = read_inputs(live.inventory, live.claims)
    key = f"{namespace}/{holder['metadata']['name']}"
    assert key in {p.key for p in inputs.pods}
    problem = inputs.compile(Disruption(preempt=True)).problem
    evictions = {e.claim: e.eviction for e in problem.existing}
    budget = f"{namespace}/train"
    assert evictions[f"{namespace}/{claim['metadata']['name']}"] == Eviction(f"pod:{key}", (key,), (budget,))
    assert problem.budgets[budget] == 0  # no disruption controller has caught up (nor would a pod not Ready allow one)

    plain = read_cluster(str(kube_cluster.kubeconfig), namespace)
    assert not any("PodDisruptionBudget" in text for text, _ in plain.inventory)
