"""Preemption and defragmentation executed by the controller, against the in-memory API (``preemptkit``). Which
victims is the solver's choice (the real CP-SAT model, with the bound pods and budgets read by the controller);
these tests check what the controller does with them: dry run first, evictions, conditions, Events, holds,
placement after the victims' claims are released, and that no device is ever in two claims."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gpupolicy.plugin.controller.snapshot import HOLD
from gpupolicy.plugin.kube import ApiError
from gpupolicy.plugin.kube.errors import error
from tests.plugin.controller.fakeapi import FakeApi
from tests.plugin.controller.preemptkit import (  # noqa: F401 (cached: a fixture)
    budget,
    cached,
    cluster,
    condition,
    controller,
    devices_of,
    gated,
    gates,
    no_device_twice,
    running,
    terminated,
    watch_every_write,
)
from tests.scrape import parse

UNIT = "pod:prod/urgent"


@pytest.fixture
def full() -> FakeApi:
    """One node, two H100s, each held by a running batch pod; a production pod asks for one GPU."""
    api = cluster({"n0": 2})
    running(api, "b0", "batch", "n0", ["gpu-0"])
    running(api, "b1", "batch", "n0", ["gpu-1"])
    gated(api, "urgent", "prod")
    return api


def hold(api: FakeApi, name: str = "urgent", namespace: str = "prod") -> dict | None:
    text = (api.get("pods", namespace, name)["metadata"].get("annotations") or {}).get(HOLD)
    return json.loads(text) if text else None


def test_preempts_exactly_the_solvers_victims_then_places_the_pod_once_their_claims_are_released(full: FakeApi) -> None:
    wall = [1_000_000.0]
    doubled = watch_every_write(full)
    ctl = controller(full, wall, preemption=True)
    first = ctl.step(force=True)
    assert first.plan is not None and first.plan.solution is not None
    chosen = sorted(p for v in first.plan.solution.preempted.values() for p in v.pods)
    assert len(chosen) == 1 and chosen[0].startswith("batch/")
    assert first.held == [UNIT] and first.evicted == chosen and not first.placed
    assert full.evictions == [(chosen[0], True), (chosen[0], False)], "dry run first, then the eviction"
    victim = chosen[0].split("/")[1]
    target = condition(full, "batch", victim, "DisruptionTarget")
    assert target is not None and (target["status"], target["reason"]) == ("True", "PreemptionByGpupolicy")
    assert target["message"] == "gpupolicy-controller: preempting to accommodate a higher priority pod prod/urgent"
    [event] = [e for e in full.of("events") if e["involvedObject"]["name"] == victim]
    assert (event["type"], event["reason"]) == ("Normal", "Preempted")
    assert event["message"] == "Preempted by pod prod/urgent on node n0"
    [preempting] = [e for e in full.of("events") if e["involvedObject"]["name"] == "urgent"]
    assert preempting["reason"] == "Preempting" and chosen[0] in preempting["message"]
    waiting = condition(full, "prod", "urgent", "gpupolicy.dev/Placement")
    assert waiting is not None and (waiting["status"], waiting["reason"]) == ("False", "WaitingForEvictions")
    assert waiting["message"] == preempting["message"]
    kept = hold(full)
    assert kept is not None and kept["reason"] == "preempted"
    assert [p[0] for p in kept["pods"]] == chosen and kept["claims"][0][0] == f"{chosen[0]}-gpu"
    assert kept["devices"] == [["gpu.gpupolicy.dev", "n0", devices_of(full, "batch", f"{victim}-gpu")[0]]]
    assert devices_of(full, "prod", "urgent-gpu") == [] and gates(full, "prod", "urgent") == ["gpupolicy.dev/placement"]
    no_device_twice(full)
    samples = parse(ctl.metrics.render())
    assert samples("gpupolicy_controller_preemptions_total") == 1
    assert samples("gpupolicy_controller_victims_total", reason="preempted") == 1

    wall[0] += 20  # the victim is terminating: its claim still holds the GPU
    second = ctl.step(force=True)
    assert second.waiting == [UNIT] and not second.solved and len(full.evictions) == 2
    assert devices_of(full, "prod", "urgent-gpu") == []
    assert parse(ctl.metrics.render())("gpupolicy_controller_holds") == 1
    no_device_twice(full)

    terminated(full, "batch", victim)
    wall[0] += 10
    third = ctl.step(force=True)
    assert third.placed == [UNIT] and len(full.evictions) == 2
    assert devices_of(full, "prod", "urgent-gpu") == [kept["devices"][0][2]]
    assert gates(full, "prod", "urgent") == [] and hold(full) is None
    placed = condition(full, "prod", "urgent", "gpupolicy.dev/Placement")
    assert placed is not None and (placed["status"], placed["reason"]) == ("True", "Placed")
    no_device_twice(full)
    assert doubled == [], "after every single write"
    samples = parse(ctl.metrics.render())
    assert samples("gpupolicy_controller_preemption_seconds_count") == 1
    assert samples("gpupolicy_controller_preemption_seconds_sum") == 30
    assert samples("gpupolicy_controller_holds") == 0


def test_our_disruption_target_is_what_the_pod_ends_with(full: FakeApi) -> None:
    """The Eviction API writes DisruptionTarget/EvictionByEvictionAPI; ours is written after it."""
    controller(full, [0.0], preemption=True).step(force=True)
    [(name, _), _] = full.evictions
    pod = full.get("pods", *name.split("/"))
    targets = [c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert [t["reason"] for t in targets] == ["PreemptionByGpupolicy"]
    assert pod["metadata"].get("deletionTimestamp"), "evicted: being deleted"


def test_a_budget_that_forbids_the_cheapest_victim_makes_the_solver_take_another() -> None:
    def setup(forbid: bool) -> FakeApi:
        api = cluster({"n0": 2})
        running(api, "cheap", "scavenge", "n0", ["gpu-0"], app="cheap")
        running(api, "dear", "batch", "n0", ["gpu-1"])
        if forbid:
            budget(api, "keep-cheap", "scavenge", "cheap", 0)
        gated(api, "urgent", "prod")
        return api

    free = setup(forbid=False)
    controller(free, [0.0], preemption=True).step(force=True)
    assert [e for e in free.evictions if not e[1]] == [("scavenge/cheap", False)], "the lowest priority goes first"
    guarded = setup(forbid=True)
    result = controller(guarded, [0.0], preemption=True).step(force=True)
    assert [e for e in guarded.evictions if not e[1]] == [("batch/dear", False)]
    assert result.held == [UNIT]
    assert not guarded.get("pods", "scavenge", "cheap")["metadata"].get("deletionTimestamp")


def test_an_eviction_refused_at_run_time_evicts_nothing_more_and_the_unit_is_solved_again() -> None:
    api = cluster({"n0": 2})
    running(api, "b0", "batch", "n0", ["gpu-0"])
    running(api, "b1", "batch", "n0", ["gpu-1"])
    gated(api, "wide", "prod", count=2)  # needs both: two victims

    def refuse_the_second(namespace: str, name: str, dry_run: bool) -> None:
        if not dry_run and any(not d for _, d in api.evictions):
            raise error("too_many_requests", "Cannot evict pod as it would violate the pod's disruption budget.")

    api.before_evict = refuse_the_second
    ctl = controller(api, [0.0], preemption=True)
    first = ctl.step(force=True)
    real = [n for n, d in api.evictions if not d]
    assert len([n for n, d in api.evictions if d]) == 2, "both dry runs passed"
    assert len(real) == 1, "the second eviction was refused: nothing more"
    assert "refused" in first.skipped["pod:prod/wide"] and not first.held
    assert hold(api, "wide") is None and devices_of(api, "prod", "wide-gpu") == []
    assert parse(ctl.metrics.render())("gpupolicy_controller_evictions_refused_total") == 1
    api.before_evict = None
    second = ctl.step(force=True)
    assert second.solved, "solved again next pass"
    no_device_twice(api)


def test_a_dry_run_refused_evicts_nothing() -> None:
    api = cluster({"n0": 1})
    running(api, "b0", "batch", "n0", ["gpu-0"])
    gated(api, "urgent", "prod")

    def refuse(namespace: str, name: str, dry_run: bool) -> None:
        raise error("too_many_requests", "Cannot evict pod as it would violate the pod's disruption budget.")

    api.before_evict = refuse
    result = controller(api, [0.0], preemption=True).step(force=True)
    assert api.evictions == [] and "refused" in result.skipped[UNIT]
    assert not api.get("pods", "batch", "b0")["metadata"].get("deletionTimestamp") and hold(api) is None


def test_a_hold_whose_victims_do_not_go_is_dropped_at_the_deadline() -> None:
    api = cluster({"n0": 1})
    running(api, "b0", "batch", "n0", ["gpu-0"])
    gated(api, "urgent", "prod")
    wall = [1_000_000.0]
    ctl = controller(api, wall, preemption=True, timeout_s=60)
    assert ctl.step(force=True).held == [UNIT]
    wall[0] += 59
    assert ctl.step(force=True).waiting == [UNIT]
    wall[0] += 2
    assert ctl.step(force=True).waiting == []
    assert hold(api) is None, "the hold is gone"
    assert devices_of(api, "prod", "urgent-gpu") == [], "the victim is still terminating: nothing to place on"
    assert [n for n, d in api.evictions if not d] == ["batch/b0"], "no second eviction of a pod being deleted"


def test_a_new_leader_keeps_the_hold() -> None:
    api = cluster({"n0": 1})
    running(api, "b0", "batch", "n0", ["gpu-0"])
    gated(api, "urgent", "prod")
    wall = [1_000_000.0]
    assert controller(api, wall, preemption=True).step(force=True).held == [UNIT]
    successor = controller(api, wall, preemption=True)  # nothing in memory: the hold is read from the pod
    again = successor.step(force=True)
    assert again.waiting == [UNIT] and not again.solved
    assert [n for n, d in api.evictions if not d] == ["batch/b0"], "no new victims"
    terminated(api, "batch", "b0")
    assert successor.step(force=True).placed == [UNIT]
    assert devices_of(api, "prod", "urgent-gpu") == ["gpu-0"] and hold(api) is None
    no_device_twice(api)


def test_a_free_device_in_a_hold_is_not_given_to_another_unit_meanwhile() -> None:
    api = cluster({"n0": 2})
    running(api, "b0", "batch", "n0", ["gpu-0"])  # gpu-1 is free
    gated(api, "wide", "prod", count=2)
    wall = [1_000_000.0]
    doubled = watch_every_write(api)
    ctl = controller(api, wall, preemption=True)
    assert ctl.step(force=True).held == ["pod:prod/wide"]
    assert hold(api, "wide")["devices"] == [["gpu.gpupolicy.dev", "n0", "gpu-0"], ["gpu.gpupolicy.dev", "n0", "gpu-1"]]
    gated(api, "rival", "prod")  # same priority, arrives while the hold waits
    meanwhile = ctl.step(force=True)
    assert meanwhile.unplaced == ["pod:prod/rival"] and devices_of(api, "prod", "rival-gpu") == []
    rival = condition(api, "prod", "rival", "gpupolicy.dev/Placement")
    assert rival is not None and "devices held for a preempting unit" in rival["message"]
    terminated(api, "batch", "b0")
    gated(api, "late", "prod")  # and one arriving the instant the victim's claim is released
    last = ctl.step(force=True)
    assert last.placed == ["pod:prod/wide"], last
    assert devices_of(api, "prod", "wide-gpu") == ["gpu-0", "gpu-1"] and devices_of(api, "prod", "late-gpu") == []
    assert doubled == []


def test_flags_off_nothing_is_ever_evicted(full: FakeApi) -> None:
    ctl = controller(full, [0.0])
    result = ctl.step(force=True)
    assert result.unplaced == [UNIT] and full.evictions == [] and not result.held
    assert ("list", "poddisruptionbudgets") not in full.calls
    assert hold(full) is None


def test_defragmentation_moves_a_movable_pod_within_the_hourly_limit() -> None:
    api = cluster({"n0": 2, "n1": 2, "n2": 2, "n3": 2})
    for name, node_name, movable in (("m0", "n0", True), ("f1", "n1", False), ("m2", "n2", True), ("f3", "n3", False)):
        running(api, name, "batch", node_name, ["gpu-0"], movable=movable)
    gated(api, "pair", "batch", count=2)  # two GPUs on one node: only after moving a pod
    wall = [1_000_000.0]
    doubled = watch_every_write(api)
    ctl = controller(api, wall, defragment=True, max_disruptions_per_hour=1)
    first = ctl.step(force=True)
    [moved] = [n for n, d in api.evictions if not d]
    assert first.held == ["pod:batch/pair"] and moved in ("batch/m0", "batch/m2")
    mover = moved.split("/")[1]
    target = condition(api, "batch", mover, "DisruptionTarget")
    assert target is not None and target["reason"] == "DefragmentationByGpupolicy"
    assert target["message"] == "gpupolicy-controller: moving to make room for a pod batch/pair"
    [event] = [e for e in api.of("events") if e["involvedObject"]["name"] == mover]
    assert event["reason"] == "Moved" and "batch/pair" in event["message"]
    assert parse(ctl.metrics.render())("gpupolicy_controller_victims_total", reason="moved") == 1
    assert hold(api, "pair", "batch")["reason"] == "moved"
    terminated(api, "batch", mover)
    assert ctl.step(force=True).placed == ["pod:batch/pair"]
    assert devices_of(api, "batch", "pair-gpu") == ["gpu-0", "gpu-1"]
    no_device_twice(api)

    # the hour's one move is spent: the same situation again is left alone until the hour has passed
    gated(api, "pair2", "batch", count=2)
    wall[0] += 600
    again = ctl.step(force=True)
    assert "pod:batch/pair2" in again.unplaced and not again.held and len(api.evictions) == 2
    wall[0] += 3600
    later = ctl.step(force=True)
    assert later.held == ["pod:batch/pair2"] and len([n for n, d in api.evictions if not d]) == 2
    assert doubled == []


def test_preemption_alone_never_moves_an_equal_priority_pod() -> None:
    api = cluster({"n0": 2, "n1": 2})
    running(api, "mover", "batch", "n0", ["gpu-0"], movable=True)
    running(api, "fixed", "batch", "n1", ["gpu-0"])
    gated(api, "pair", "batch", count=2)
    result = controller(api, [0.0], preemption=True).step(force=True)
    assert result.unplaced == ["pod:batch/pair"] and api.evictions == []


def test_a_write_refused_by_the_fence_evicts_nothing(full: FakeApi) -> None:
    ctl = controller(full, [0.0], preemption=True)
    leader = [True]
    ctl.api.may_write = lambda: leader[0]

    def lose_it(namespace: str, name: str, dry_run: bool) -> None:
        leader[0] = False

    full.before_evict = lose_it
    with pytest.raises(ApiError):
        ctl.step(force=True)
    assert full.evictions == [] or all(d for _, d in full.evictions)


def test_cli_flags_and_their_usage_errors() -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gpupolicy.plugin.cli.main", "controller", "run", *args],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    shown = cli("--help")
    assert shown.returncode == 0
    for flag in ("--preemption", "--defragment", "--max-disruptions-per-hour", "--preemption-timeout"):
        assert flag in shown.stdout
    negative = cli("--max-disruptions-per-hour", "-1", "--kubeconfig", "/nonexistent")
    assert negative.returncode == 2
    assert "--max-disruptions-per-hour must be an integer in [0, 100000], not -1" in negative.stderr
    zero = cli("--preemption-timeout", "0", "--kubeconfig", "/nonexistent")
    assert zero.returncode == 2 and "--preemption-timeout must be a number in (0, 86400], not 0" in zero.stderr
    assert "Traceback" not in negative.stderr + zero.stderr


def test_a_victim_gone_at_once_still_gets_its_event(full: FakeApi) -> None:
    """A pod with a short grace period can be gone before the condition is written: the Event is written anyway."""

    def gone_at_once(namespace: str, name: str, dry_run: bool) -> None:
        if not dry_run:
            full.delete("pods", namespace, name)
            raise error("not_found", f"pods {namespace}/{name}")

    full.before_evict = gone_at_once
    result = controller(full, [0.0], preemption=True).step(force=True)
    assert result.held == [UNIT] and len(result.evicted) == 1
    victim = result.evicted[0].split("/")[1]
    [event] = [e for e in full.of("events") if e["involvedObject"]["name"] == victim]
    assert event["reason"] == "Preempted" and event["message"] == "Preempted by pod prod/urgent on node n0"


def test_a_conflict_is_a_victim_gone_only_when_the_pod_is_gone(full: FakeApi) -> None:
    """409 from the Eviction API: a budget that kept changing (the pod is still there: refused), or the uid
    precondition (the pod was recreated under its name: the victim we meant is gone)."""

    def budget_busy(namespace: str, name: str, dry_run: bool) -> None:
        raise error("conflict", "Operation cannot be fulfilled on poddisruptionbudgets: the object has been modified")

    full.before_evict = budget_busy
    result = controller(full, [0.0], preemption=True).step(force=True)
    assert "refused" in result.skipped[UNIT] and not result.held and full.evictions == []

    api = cluster({"n0": 1})
    running(api, "b0", "batch", "n0", ["gpu-0"])
    gated(api, "urgent", "prod")

    def recreated_meanwhile(namespace: str, name: str, dry_run: bool) -> None:
        if not dry_run:
            api.objects[("pods", namespace, name)]["metadata"]["uid"] = "a-new-pod"
            raise error("conflict", "the UID in the precondition does not match the UID in record")

    api.before_evict = recreated_meanwhile
    second = controller(api, [0.0], preemption=True).step(force=True)
    assert second.held == [UNIT] and second.evicted == ["batch/b0"]
    assert condition(api, "batch", "b0", "DisruptionTarget") is None, "the new pod is left alone"


def test_a_leader_stopped_between_the_hold_and_the_evictions_leaves_nothing_to_wait_for() -> None:
    api = cluster({"n0": 1})
    running(api, "b0", "batch", "n0", ["gpu-0"])
    gated(api, "urgent", "prod")
    wall = [1_000_000.0]
    first = controller(api, wall, preemption=True)
    leader = [True]
    first.api.may_write = lambda: leader[0]

    def lose_the_lease_with_the_hold(kind: str, obj: dict, status: bool) -> None:
        if HOLD in (obj["metadata"].get("annotations") or {}):
            leader[0] = False  # this write was let through; the next (the eviction) is not

    api.before_update = lose_the_lease_with_the_hold
    with pytest.raises(ApiError):
        first.step(force=True)
    assert hold(api) is not None and [d for _, d in api.evictions] == [True], "hold written, nothing evicted"
    api.before_update = None
    successor = controller(api, wall, preemption=True)
    result = successor.step(force=True)
    assert result.held == [UNIT] and not result.waiting, "no wait for the deadline: planned and evicted again"
    assert [n for n, d in api.evictions if not d] == ["batch/b0"]
