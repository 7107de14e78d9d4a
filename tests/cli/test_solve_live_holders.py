"""``gpupolicy solve --kubeconfig`` reads who holds the allocated claims: bound pods (with the claims'
``reservedFor``) always, PodDisruptionBudgets only for a solve that may disrupt (and then a refusal is an error)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.cli.live import collect, read_cluster
from gpupolicy.plugin.kube.resources import RESOURCES
from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.solver.inputs import read_inputs
from gpupolicy.solver.problem import Disruption, Eviction
from tests.cli.test_solve_live_errors import CLUSTER, Served, claim, kubeconfig, served  # noqa: F401

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
