"""Holds and the cluster objects preemption reads: the annotation read back, a hold that does not read dropped,
held MIG devices reserved with their siblings on the same GPU, PodDisruptionBudgets as the Eviction API counts them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupolicy.plugin.controller.bound import budget_info, pod_info
from gpupolicy.plugin.controller.holds import Hold, hold_of
from gpupolicy.plugin.controller.placer import LoadCache, Settings, prepare
from gpupolicy.plugin.controller.snapshot import HOLD, Snapshot, units
from tests.plugin.controller import standin
from tests.plugin.controller.fakeapi import claim, example, pod, strands
from tests.plugin.controller.preemptkit import cluster, controller, gated

FOUR_G, THREE_G = "mig-4g.gpupolicy.dev", "mig-3g.gpupolicy.dev"


@pytest.fixture(autouse=True)
def _model(monkeypatch: pytest.MonkeyPatch) -> None:
    standin.install(monkeypatch)


def test_a_hold_reads_back_as_written() -> None:
    hold = Hold("preempted", (("b/p", "u1"),), (("b/p-gpu", "u2"),), (("d", "pool", "gpu-0"),), 1_000_000, 1_000_120)
    assert Hold.from_annotation(hold.to_annotation()) == hold
    assert '"deadline": "1970-01-12T13:48:40Z"' in hold.to_annotation()


def test_a_hold_that_does_not_read_is_dropped_not_obeyed() -> None:
    api = cluster({"n0": 1})
    gated(api, "urgent", "prod")
    stored = api.get("pods", "prod", "urgent")
    stored["metadata"]["annotations"] = {HOLD: "{not json"}
    api.put("pods", stored)
    assert hold_of(units(Snapshot.read(api))[0]) is None
    result = controller(api, [0.0], preemption=True).step(force=True)
    assert result.placed == ["pod:prod/urgent"] and HOLD not in api.get("pods", "prod", "urgent")["metadata"].get(
        "annotations", {}
    )


def test_a_held_mig_device_keeps_the_other_instances_of_its_gpu_from_other_claims() -> None:
    api = strands()
    for obj in (
        claim("held-4g", FOUR_G),
        pod("holder", ["held-4g"]),
        claim("other-3g", THREE_G),
        pod("o", ["other-3g"]),
    ):
        api.put("pods" if obj["kind"] == "Pod" else "resourceclaims", obj)
    policy = Path(example("first-fit-strands")[0])
    snapshot = Snapshot.read(api)
    todo = units(snapshot)
    settings = Settings(policy=(policy.read_text(), str(policy)))
    four = next(d.key for d in prepare(snapshot, todo, settings, LoadCache()).problem.devices if "4g40gb" in d.name)
    problem = prepare(snapshot, todo, settings, LoadCache(), {"pod:default/holder": [four]}).problem
    eligible = {c.name: [problem.devices[d].name for r in c.requests for a in r.alternatives for d in a.eligible]
                for c in problem.claims}  # fmt: skip
    assert eligible["other-3g"] == [], "every 3g instance shares the held 4g's GPU (its counter set)"
    assert four[2] in eligible["held-4g"], "the holder keeps its device"


def test_budgets_count_as_the_eviction_api_counts_them() -> None:
    def pdb(generation: int, observed: int, allowed: int) -> dict:
        return {
            "metadata": {"name": "b", "namespace": "ns", "generation": generation},
            "spec": {"selector": {"matchLabels": {"app": "x"}, "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a"]}]}},
            "status": {"observedGeneration": observed, "disruptionsAllowed": allowed},
        }  # fmt: skip

    current = budget_info(pdb(2, 2, 1))
    assert (current.key, current.allowed, dict(current.match_labels)) == ("ns/b", 1, {"app": "x"})
    assert current.match_expressions[0].operator == "In" and current.match_expressions[0].values == ("a",)
    assert budget_info(pdb(3, 2, 1)).allowed == 0, "not observed yet: the API server answers 429"
    odd = pdb(1, 1, 5)
    odd["spec"]["selector"]["matchExpressions"][0]["operator"] = "Near"
    guarded = budget_info(odd)
    assert guarded.allowed == 0 and not guarded.match_labels, "protects every pod of its namespace"


def test_bound_pods_as_the_solver_reads_them() -> None:
    raw = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"a": "b"}, "deletionTimestamp": "t",
                     "annotations": {"gpupolicy.dev/movable": "true"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "r", "uid": "r", "controller": True}]},
        "spec": {"nodeName": "n0"},
        "status": {"phase": "Running"},
    }  # fmt: skip
    info = pod_info(raw)
    assert (info.key, info.uid, info.node, info.phase, info.deleting, info.controlled) == (
        "ns/p",
        "u",
        "n0",
        "Running",
        True,
        True,
    )
    assert info.annotations["gpupolicy.dev/movable"] == "true"
