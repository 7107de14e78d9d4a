"""The controller's cached reader gives the solver the same problem as the ``gpupolicy solve`` text path."""

from __future__ import annotations

from typing import Any

from gpupolicy.plugin.controller.placer import LoadCache, Settings, read, read_text
from gpupolicy.plugin.controller.snapshot import Snapshot
from gpupolicy.solver.inputs import SolveInput
from gpupolicy.solver.problem import Disruption, Eviction, Problem
from tests.plugin.controller.fakeapi import FakeApi, allocated, claim, example, node, pod


def shape(inputs: SolveInput) -> Any:
    problem: Problem = inputs.compile().problem
    claims = [
        (c.key, c.gang, c.error, [(a.name, a.eligible) for r in c.requests for a in r.alternatives])
        for c in problem.claims
    ]
    return problem.devices, problem.counter_sets, problem.existing, claims


def test_cached_and_text_readers_agree_and_invalid_objects_are_left_out() -> None:
    api = FakeApi()
    policy, classes, slices = example("first-fit-strands")
    for obj in classes:
        api.put("deviceclasses", obj)
    for obj in slices:
        api.put("resourceslices", obj)
    api.put("nodes", node("h100-0"))
    held = claim("held", "mig-3g.gpupolicy.dev")
    held["status"] = allocated("gpu-0-mig-3g40gb-9-0")
    for obj in (held, claim("a", "mig-3g.gpupolicy.dev"), claim("b", "mig-4g.gpupolicy.dev")):
        api.put("resourceclaims", obj)
    snapshot = Snapshot.read(api)
    settings = Settings(policy=(policy.read_text(), str(policy)))
    pending = [("default", "a"), ("default", "b")]
    gangs = {("default", "a"): "default/p", ("default", "b"): "default/p"}
    cache = LoadCache()
    fast = read(snapshot, pending, gangs, settings, cache)
    assert shape(fast) == shape(read_text(snapshot, pending, gangs, settings))
    assert len(fast.allocated) == 1 and len(fast.pending) == 2 and not cache.problems

    again = read(snapshot, pending, gangs, settings, cache)
    assert again.slices[0] is fast.slices[0], "unchanged objects come from the cache"

    bad = claim("c", "mig-3g.gpupolicy.dev")
    bad["spec"]["devices"]["requests"][0]["exactly"]["count"] = -1
    api.put("resourceclaims", bad)
    snapshot = Snapshot.read(api)
    worse = read(snapshot, [*pending, ("default", "c")], gangs, settings, cache)
    assert len(worse.pending) == 2 and cache.problems and "default/c" in cache.problems[0]


def test_holders_and_budgets_are_read_only_for_disruption() -> None:
    """With ``disruption`` the snapshot keeps the bound pods (with the claims' reservedFor) and the budgets, both
    readers turn them into the solver's holders alike, and a preempting compile marks the held claim."""
    api = FakeApi()
    policy, classes, slices = example("first-fit-strands")
    for obj in classes:
        api.put("deviceclasses", obj)
    for obj in slices:
        api.put("resourceslices", obj)
    api.put("nodes", node("h100-0"))
    worker = api.put("pods", pod("worker", ["held"], gated=False))
    worker["metadata"]["labels"] = {"app": "train"}
    worker["metadata"]["annotations"] = {"gpupolicy.dev/movable": "true", "big": "x" * 1000}
    worker["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Job", "name": "j", "uid": "u", "controller": True}
    ]
    worker["spec"]["nodeName"] = "h100-0"
    worker["status"] = {"phase": "Running"}
    api.put("pods", worker)
    held = claim("held", "mig-3g.gpupolicy.dev")
    held["status"] = allocated("gpu-0-mig-3g40gb-9-0")
    held["status"]["reservedFor"] = [{"resource": "pods", "name": "worker", "uid": worker["metadata"]["uid"]}]
    api.put("resourceclaims", held)
    api.put("resourceclaims", claim("a", "mig-4g.gpupolicy.dev"))
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "train", "namespace": "default", "generation": 1},
        "spec": {"minAvailable": 0, "selector": {"matchLabels": {"app": "train"}}},
        "status": {
            "observedGeneration": 1,
            "disruptionsAllowed": 1,
            "currentHealthy": 1,
            "desiredHealthy": 0,
            "expectedPods": 1,
        },
    }
    api.put("poddisruptionbudgets", budget)
    settings = Settings(policy=(policy.read_text(), str(policy)))
    pending, gangs = [("default", "a")], {("default", "a"): "default/p"}

    plain = Snapshot.read(api)
    assert ("list", "poddisruptionbudgets") not in api.calls and plain.holders == [] and plain.budgets == []

    snapshot = Snapshot.read(api, disruption=True)
    cache = LoadCache()
    fast = read(snapshot, pending, gangs, settings, cache)
    text = read_text(snapshot, pending, gangs, settings)
    assert not cache.problems
    assert fast.pods == text.pods and [p.key for p in fast.pods] == ["default/worker"]
    assert fast.pods[0].annotations == {"gpupolicy.dev/movable": "true"} and fast.pods[0].controlled
    assert fast.budgets == text.budgets and [(b.key, b.allowed) for b in fast.budgets] == [("default/train", 1)]
    problem = fast.compile(Disruption(preempt=True)).problem
    assert {e.claim: e.eviction for e in problem.existing} == {
        "default/held": Eviction("pod:default/worker", ("default/worker",), ("default/train",), movable=True)
    }
    assert problem.budgets == {"default/train": 1}
    assert shape(fast) == shape(text)
