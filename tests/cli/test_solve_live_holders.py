"""``gpupolicy solve --kubeconfig`` reads who holds the allocated claims: bound pods (with the claims'
``reservedFor``) always, PodDisruptionBudgets only for a solve that may disrupt (and then a refusal is an error)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.cli.live import collect, read_cluster
from gpupolicy.plugin.kube.resources import RESOURCES
from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.solver.inputs import read_inputs
from gpupolicy.solver.problem import Disruption, Eviction
from tests.cli.test_solve_live_errors import CLUSTER, Served, claim, kubeconfig, served, solve  # noqa: F401

Obj = dict[str, Any]


def bound(name: str, **meta: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "team", "uid": f"uid-{name}", **meta},
        "spec": {
            "nodeName": "node-b",
            "containers": [{"name": "c"}],
            "resourceClaims": [{"name": "gpu", "resourceClaimName": "held"}],
        },
        "status": {"phase": "Running", "resourceClaimStatuses": []},
    }


def cluster(budgets: list[Obj] | None = None) -> dict[str, list[Obj]]:
    out = copy.deepcopy(CLUSTER)
    held = claim("held", allocated_on=("node-b", "gpu-0"))
    held["status"]["reservedFor"] = [{"resource": "pods", "name": "trainer", "uid": "uid-trainer"}]
    out["/apis/resource.k8s.io/v1/resourceclaims"] = [held, claim("p-gpu-x1")]
    trainer = bound(
        "trainer",
        labels={"app": "train"},
        annotations={"gpupolicy.dev/movable": "true", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
        ownerReferences=[{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u", "controller": True}],
        managedFields=[{"manager": "kubelet"}],
    )
    idle = bound("idle")  # bound but uses no claim and is in no group: not a holder
    idle["spec"].pop("resourceClaims")
    out["/api/v1/pods"] = [*out["/api/v1/pods"], trainer, idle]
    if budgets is not None:
        out["/apis/policy/v1/poddisruptionbudgets"] = budgets
    return out


BUDGET = {
    "apiVersion": "policy/v1",
    "kind": "PodDisruptionBudget",
    "metadata": {"name": "train", "namespace": "team", "generation": 1, "managedFields": [{"manager": "x"}]},
    "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "train"}}, "someNewField": True},
    "status": {
        "observedGeneration": 1,
        "disruptionsAllowed": 1,
        "currentHealthy": 1,
        "desiredHealthy": 0,
        "expectedPods": 1,
    },
}


def lister(objects: dict[str, list[Obj]], seen: list[str]) -> Any:
    paths = {
        "resourceslices": "/apis/resource.k8s.io/v1/resourceslices",
        "deviceclasses": "/apis/resource.k8s.io/v1/deviceclasses",
        "nodes": "/api/v1/nodes",
        "resourceclaims": "/apis/resource.k8s.io/v1/resourceclaims",
        "pods": "/api/v1/pods",
        "resourceclaimtemplates": "/apis/resource.k8s.io/v1/resourceclaimtemplates",
        "poddisruptionbudgets": "/apis/policy/v1/poddisruptionbudgets",
    }

    def list_kind(kind: str) -> list[Obj]:  # as the client returns them: each item with its apiVersion and kind
        seen.append(kind)
        res = RESOURCES[kind]
        return [{**copy.deepcopy(o), "apiVersion": res.api_version, "kind": res.kind} for o in objects[paths[kind]]]

    return list_kind


def test_bound_pods_and_budgets_reach_the_solver() -> None:
    seen: list[str] = []
    state = collect(lister(cluster([BUDGET]), seen), disruption=True)
    inputs = read_inputs(state.inventory, state.claims)
    pods = {p.key: p for p in inputs.pods}
    assert sorted(pods) == ["team/r", "team/trainer"]  # r: pending phase but bound to node-a
    trainer = pods["team/trainer"]
    assert trainer.annotations == {"gpupolicy.dev/movable": "true"} and trainer.controlled and trainer.node == "node-b"
    assert [(b.key, b.allowed) for b in inputs.budgets] == [("team/train", 1)]
    problem = inputs.compile(Disruption(preempt=True)).problem
    evictions = {e.claim: e.eviction for e in problem.existing}
    assert evictions == {
        "team/held": Eviction(unit="pod:team/trainer", pods=("team/trainer",), budgets=("team/train",), movable=True)
    }
    assert problem.budgets == {"team/train": 1}
    assert "poddisruptionbudgets" in seen


def test_a_plain_solve_does_not_list_budgets() -> None:
    seen: list[str] = []
    state = collect(lister(cluster(), seen))
    assert "poddisruptionbudgets" not in seen
    assert read_inputs(state.inventory, state.claims).budgets == []


def test_budgets_a_server_does_not_serve(served: Served, tmp_path: Path) -> None:  # noqa: F811
    """The stand-in server serves no PodDisruptionBudgets (404): a plain read never asks, a disrupting one fails."""
    url, requests = served
    path = str(kubeconfig(tmp_path, url))
    read_cluster(path)
    assert not any("poddisruptionbudgets" in p for _, p in requests)
    with pytest.raises(DiagnosticError) as exc:
        read_cluster(path, disruption=True)
    [problem] = exc.value.diagnostics
    assert problem.code == "cluster_api_missing" and "poddisruptionbudgets" in problem.message


POLICY = """apiVersion: gpupolicy.dev/v1alpha1
kind: GpuPolicy
metadata: {name: tiers}
spec:
  priorityTiers:
  - {name: urgent, priority: 1000, matchLabels: {tier: urgent}}
  - {name: batch, priority: 0, matchLabels: {tier: batch}}
"""
H100 = [{"cel": {"expression": 'device.attributes["gpu.example.com"].model == "h100"'}}]


def tiered(name: str, tier: str) -> Obj:
    obj = claim(name)
    obj["metadata"]["labels"] = {"tier": tier}
    obj["spec"]["devices"]["requests"][0]["exactly"]["selectors"] = H100
    return obj


def preempting_cluster(budgets: list[Obj] | None) -> dict[str, list[Obj]]:
    """The one usable H100 (node-a/gpu-0) held by a batch pod; an urgent claim for an H100 waits."""
    out = copy.deepcopy(CLUSTER)
    held = tiered("held", "batch")
    held["status"] = {
        "allocation": {
            "devices": {
                "results": [{"request": "gpu", "driver": "gpu.example.com", "pool": "node-a", "device": "gpu-0"}]
            }
        },
        "reservedFor": [{"resource": "pods", "name": "trainer", "uid": "uid-trainer"}],
    }
    out["/apis/resource.k8s.io/v1/resourceclaims"] = [held, tiered("urgent", "urgent")]
    trainer = bound("trainer", labels={"app": "train"})
    trainer["spec"]["nodeName"] = "node-a"
    out["/api/v1/pods"] = [trainer]
    if budgets is not None:
        out["/apis/policy/v1/poddisruptionbudgets"] = budgets
    return out


def allowing(n: int) -> Obj:
    budget = copy.deepcopy(BUDGET)
    budget["status"]["disruptionsAllowed"] = n
    return budget


@pytest.mark.parametrize(
    ("budgets", "code", "preempted"),
    [
        pytest.param([], 0, ["team/held"], id="no budget"),
        pytest.param([allowing(1)], 0, ["team/held"], id="a budget allowing one"),
        pytest.param([allowing(0)], 1, [], id="a budget allowing none"),
    ],
)
def test_solve_preempt_against_a_served_cluster(
    budgets: list[Obj],
    code: int,
    preempted: list[str],
    served: Served,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``gpupolicy solve --kubeconfig --preempt``: the live holder and budget decide whether the urgent claim may
    take the batch pod's GPU; nothing is written."""
    monkeypatch.setattr("tests.cli.test_solve_live_errors.CLUSTER", preempting_cluster(budgets))
    url, requests = served
    (tmp_path / "policy.yaml").write_text(POLICY)
    args = ["--kubeconfig", str(kubeconfig(tmp_path, url)), "--policy", str(tmp_path / "policy.yaml"), "--preempt"]
    got, out, err = solve(capsys, *args, "-o", "json", "--no-timing", "--workers", "1")
    assert got == code, err
    doc = json.loads(out)
    assert [p["claim"] for p in doc.get("preempted", [])] == preempted
    assert [u["claim"] for u in doc["unplaced"]] == ([] if preempted else ["team/urgent"])
    assert ("GET", "/apis/policy/v1/poddisruptionbudgets") in requests
    assert all(method == "GET" for method, _ in requests)


def test_solve_preempt_needs_the_budgets(
    served: Served,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that serves no PodDisruptionBudgets: a plain solve works, a preempting one is refused (exit 1)."""
    monkeypatch.setattr("tests.cli.test_solve_live_errors.CLUSTER", preempting_cluster(None))
    url, _ = served
    base = ["--kubeconfig", str(kubeconfig(tmp_path, url)), "-o", "json", "--no-timing", "--workers", "1"]
    got, _, err = solve(capsys, *base)
    assert got == 1 and "cluster_api" not in err  # the urgent claim is unplaced, nothing else is wrong
    got, out, err = solve(capsys, *base, "--preempt")
    assert got == 1 and out == "" and "cluster_api_missing" in err and "poddisruptionbudgets" in err
