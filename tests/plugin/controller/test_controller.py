"""The controller against an in-memory API: batching, gangs and groups, conflicts, conditions, recovery."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupolicy.plugin.controller.loop import Config, Controller
from gpupolicy.plugin.controller.placer import Settings
from gpupolicy.plugin.controller.report import CONDITION, camel
from gpupolicy.plugin.controller.snapshot import ALLOCATED_BY, FINALIZER, GATE
from gpupolicy.plugin.kube import ApiError, Obj
from gpupolicy.solver.result import SolveParams
from tests.logcapture import captured
from tests.plugin.controller.fakeapi import FakeApi, allocated, claim, example, node, pod, strands
from tests.scrape import parse

THREE_G, FOUR_G = "mig-3g.gpupolicy.dev", "mig-4g.gpupolicy.dev"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["listed", "cached"])
def api(request: pytest.FixtureRequest) -> Iterator[FakeApi]:
    """examples/first-fit-strands: one H100 as a dynamic MIG pool offering 3g.40gb and 4g.40gb. Each test runs
    twice: passes that list the cluster, and passes read from the cache the watches keep (what `run` does)."""
    fake = strands()
    fake.stop = threading.Event()  # type: ignore[attr-defined]
    fake.cached = request.param == "cached"  # type: ignore[attr-defined]
    yield fake
    fake.stop.set()  # type: ignore[attr-defined]


def controller(api: FakeApi, clock: Clock | None = None, window: float = 0.5) -> Controller:
    policy = Path(example("first-fit-strands")[0])
    settings = Settings(
        policy=(policy.read_text(), str(policy)), params=SolveParams(time_limit_s=5, workers=1, explain_total_s=5)
    )
    ctl = Controller(api, Config("test-replica", settings, batch_window_s=window), clock=clock or Clock())
    if getattr(api, "cached", False):
        assert ctl.inform(api.stop)  # type: ignore[attr-defined]
    return ctl


def add(api: FakeApi, *objs: Obj) -> None:
    for obj in objs:
        api.put("pods" if obj["kind"] == "Pod" else "resourceclaims", obj)


def claim_of(api: FakeApi, name: str) -> Obj:
    return api.get("resourceclaims", "default", name)


def gates(api: FakeApi, name: str) -> list[str]:
    return [g["name"] for g in api.get("pods", "default", name)["spec"].get("schedulingGates") or []]


def placement_condition(api: FakeApi, name: str) -> Obj | None:
    conditions = (api.get("pods", "default", name).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == CONDITION), None)


def devices(api: FakeApi, name: str) -> list[str]:
    alloc = (claim_of(api, name).get("status") or {}).get("allocation")
    return [r["device"] for r in alloc["devices"]["results"]] if alloc else []


def test_places_what_first_fit_strands_and_removes_the_gates(api: FakeApi) -> None:
    add(api, claim("a-three-g", THREE_G), claim("b-four-g", FOUR_G), pod("p3", ["a-three-g"]), pod("p4", ["b-four-g"]))
    result = controller(api).step(force=True)
    assert sorted(result.placed) == ["pod:default/p3", "pod:default/p4"]
    three, four = devices(api, "a-three-g"), devices(api, "b-four-g")
    assert four == ["gpu-0-mig-4g40gb-5-0"] and len(three) == 1 and "-3g40gb-" in three[0]
    written = claim_of(api, "b-four-g")
    assert FINALIZER in written["metadata"]["finalizers"]
    assert written["metadata"]["annotations"][ALLOCATED_BY] == "test-replica"
    selector = written["status"]["allocation"]["nodeSelector"]["nodeSelectorTerms"][0]["matchFields"][0]
    assert selector == {"key": "metadata.name", "operator": "In", "values": ["h100-0"]}
    assert gates(api, "p3") == [] and gates(api, "p4") == []


def test_a_pass_shows_in_the_metrics_and_in_json_log_lines(api: FakeApi) -> None:
    add(api, claim("a-three-g", THREE_G), claim("b-four-g", FOUR_G), pod("p3", ["a-three-g"]), pod("p4", ["b-four-g"]))
    ctl = controller(api)
    with captured(component="gpupolicy-controller") as stream:
        result = ctl.step(force=True)
    samples = parse(ctl.metrics.render())
    assert samples("gpupolicy_controller_placed_pods_total") == 2
    assert samples("gpupolicy_controller_placed_claims_total") == 2
    assert samples("gpupolicy_controller_pending_pods") == 2
    assert samples("gpupolicy_controller_solve_seconds_count") == 1
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    placed = sorted((line for line in lines if line["msg"] == "placed"), key=lambda line: str(line["unit"]))
    assert [line["unit"] for line in placed] == sorted(result.placed)
    assert list(placed[0])[:5] == ["ts", "level", "component", "logger", "msg"]
    assert placed[0]["level"] == "info" and placed[0]["component"] == "gpupolicy-controller"
    assert placed[0]["logger"] == "gpupolicy.plugin.controller.loop" and placed[0]["claims"] == 1
    batch = next(line for line in lines if line["msg"] == "batch")
    assert (batch["units"], batch["claims"]) == (2, 2)
    assert '"msg": "placed"' in stream.getvalue()  # what tests/e2e/controller looks for


def test_waits_for_the_batch_window_then_solves_everything_seen(api: FakeApi) -> None:
    clock = Clock()
    ctl = controller(api, clock, window=2.0)
    add(api, claim("a-three-g", THREE_G), pod("p3", ["a-three-g"]))
    assert not ctl.step().solved
    clock.now += 1.0
    add(api, claim("b-four-g", FOUR_G), pod("p4", ["b-four-g"]))
    assert not ctl.step().solved, "the window runs from the first pending pod"
    clock.now += 1.5
    result = ctl.step()
    assert result.solved and len(result.placed) == 2, "both pods in one batch"


def test_other_gates_stay_and_ungated_pods_are_left_alone(api: FakeApi) -> None:
    other = pod("p3", ["a-three-g"])
    other["spec"]["schedulingGates"].append({"name": "example.com/other"})
    add(api, claim("a-three-g", THREE_G), other, claim("b-four-g", FOUR_G), pod("free", ["b-four-g"], gated=False))
    result = controller(api).step(force=True)
    assert result.placed == ["pod:default/p3"]
    assert gates(api, "p3") == ["example.com/other"]
    assert devices(api, "b-four-g") == [], "claims of pods without our gate are the scheduler's"


def test_a_pod_that_does_not_fit_stays_gated_whole_with_the_explanation(api: FakeApi) -> None:
    add(api, claim("x", FOUR_G), claim("y", FOUR_G), pod("twin", ["x", "y"]))
    ctl = controller(api)
    result = ctl.step(force=True)
    assert result.unplaced == ["pod:default/twin"] and not result.placed
    assert devices(api, "x") == [] and devices(api, "y") == []
    assert gates(api, "twin") == [GATE]
    cond = placement_condition(api, "twin")
    assert cond is not None and cond["status"] == "False"
    assert "default/x" in cond["message"] or "default/y" in cond["message"]
    assert cond["reason"][0].isupper() and "_" not in cond["reason"]
    events = api.of("events")
    assert len(events) == 1 and events[0]["message"] == cond["message"]
    samples = parse(ctl.metrics.render()).values
    unplaced = {dict(labels)["reason"]: v for (n, labels), v in samples.items() if n.endswith("_unplaced_pods")}
    assert list(unplaced.values()) == [1] and [camel(r) for r in unplaced] == [cond["reason"]]

    assert not ctl.step(force=True).solved, "no inventory change: not solved again"
    assert len(api.of("events")) == 1, "no new event for the same reason"


def test_unplaced_pods_are_retried_when_an_allocation_is_released(api: FakeApi) -> None:
    theirs = claim("theirs", FOUR_G)
    theirs["status"] = allocated("gpu-0-mig-4g40gb-5-0")
    add(api, theirs, claim("late", FOUR_G), pod("p", ["late"]))
    ctl = controller(api)
    assert ctl.step(force=True).unplaced == ["pod:default/p"]
    cond = placement_condition(api, "p")
    assert cond is not None and cond["reason"] == "CountersExhausted" and "theirs" in cond["message"]
    stored = claim_of(api, "theirs")
    stored["status"] = {}
    api.put("resourceclaims", stored)  # the other pod finished
    assert ctl.step(force=True).placed == ["pod:default/p"]
    assert devices(api, "late") == ["gpu-0-mig-4g40gb-5-0"]
    cond = placement_condition(api, "p")
    assert cond is not None and (cond["status"], cond["reason"]) == ("True", "Placed")


def test_a_group_spans_nodes_once_a_second_gpu_joins(api: FakeApi) -> None:
    add(api, claim("g1", FOUR_G), claim("g2", FOUR_G))
    add(api, pod("w1", ["g1"], group="train"), pod("w2", ["g2"], group="train"))
    ctl = controller(api)
    assert ctl.step(force=True).unplaced == ["group:default/train"]
    _, _, slices = example("first-fit-strands")
    for s in slices:  # a second H100 joins
        s = {**s, "metadata": {**s["metadata"], "name": s["metadata"]["name"].replace("h100-0", "h100-1")}}
        s["spec"] = {**s["spec"], "nodeName": "h100-1", "pool": {**s["spec"]["pool"], "name": "h100-1"}}
        api.put("resourceslices", s)
    api.put("nodes", node("h100-1"))
    assert ctl.step(force=True).placed == ["group:default/train"]
    pools = {claim_of(api, c)["status"]["allocation"]["devices"]["results"][0]["pool"] for c in ("g1", "g2")}
    assert pools == {"h100-0", "h100-1"}
    assert gates(api, "w1") == [] and gates(api, "w2") == []


def test_a_group_is_placed_all_or_nothing(api: FakeApi) -> None:
    add(api, claim("g1", FOUR_G), claim("g2", FOUR_G), claim("solo", THREE_G))
    add(api, pod("w1", ["g1"], group="train"), pod("w2", ["g2"], group="train"), pod("s", ["solo"]))
    result = controller(api).step(force=True)
    assert result.placed == ["pod:default/s"]
    assert result.unplaced == ["group:default/train"]
    assert devices(api, "g1") == [] and devices(api, "g2") == []
    assert gates(api, "w1") == [GATE] and gates(api, "w2") == [GATE]
    for name in ("w1", "w2"):
        cond = placement_condition(api, name)
        assert cond is not None and cond["status"] == "False"
        assert "group_incomplete: pod(s) default/w2 of group:default/train cannot be placed" in cond["message"]
        assert cond["reason"] == "GroupIncomplete"
        assert "default/g2: capacity_exhausted: claim default/g2: eligible devices are taken by" in cond["message"]


def test_a_group_waits_for_its_declared_size(api: FakeApi) -> None:
    member = pod("w1", ["g1"], group="train")
    member["metadata"]["annotations"] = {"gpupolicy.dev/group-size": "2"}
    add(api, claim("g1", THREE_G), member)
    ctl = controller(api)
    assert not ctl.step(force=True).solved
    add(api, claim("g2", FOUR_G), pod("w2", ["g2"], group="train"))
    assert sorted(ctl.step(force=True).placed) == ["group:default/train"]


def test_a_conflicting_write_is_retried(api: FakeApi) -> None:
    add(api, claim("a-three-g", THREE_G), pod("p3", ["a-three-g"]))
    bumped: list[str] = []

    def someone_else(kind: str, obj: Obj, status: bool) -> None:
        if kind == "resourceclaims" and status and not bumped:  # e.g. a label added meanwhile
            bumped.append(obj["metadata"]["name"])
            stored = api.get("resourceclaims", "default", obj["metadata"]["name"])
            stored["metadata"].setdefault("labels", {})["touched"] = "yes"
            api.put("resourceclaims", stored)

    api.before_update = someone_else
    ctl = controller(api)
    result = ctl.step(force=True)
    assert result.placed == ["pod:default/p3"] and bumped
    assert devices(api, "a-three-g") and claim_of(api, "a-three-g")["metadata"]["labels"] == {"touched": "yes"}
    assert parse(ctl.metrics.render())("gpupolicy_controller_conflicts_total") == 1


def test_an_allocation_made_between_solve_and_write_is_never_doubled(api: FakeApi) -> None:
    """The scheduler allocates the 4g slot for an ungated pod after our snapshot: we must not write ours."""
    add(api, claim("ours", FOUR_G), pod("p", ["ours"]), claim("theirs", FOUR_G))
    ctl = controller(api)
    fired: list[bool] = []

    def scheduler(kind: str) -> None:
        # right after the snapshot's last list; from the cache: right after the list before writing (the check
        # before the gates catches it)
        if kind != ("resourceclaims" if api.cached else "nodes") or fired:  # type: ignore[attr-defined]
            return
        fired.append(True)
        theirs = api.get("resourceclaims", "default", "theirs")
        theirs["status"] = allocated("gpu-0-mig-4g40gb-5-0")
        api.put("resourceclaims", theirs)

    api.after_list = scheduler
    result = ctl.step(force=True)
    assert fired and not result.placed and "pod:default/p" in result.skipped
    assert devices(api, "ours") == [] and gates(api, "p") == [GATE]
    api.after_list = None
    again = ctl.step(force=True)
    assert again.unplaced == ["pod:default/p"], "solved again against the new allocation: no slot left"
    assert devices(api, "ours") == []


def test_a_unit_written_half_way_is_rolled_back(api: FakeApi) -> None:
    add(api, claim("x", THREE_G), claim("y", FOUR_G), pod("both", ["x", "y"]))

    def fail_second(kind: str, obj: Obj, status: bool) -> None:
        if kind == "resourceclaims" and status and obj["metadata"]["name"] == "y" and obj["status"].get("allocation"):
            raise ApiError("500: etcd timeout")

    api.before_update = fail_second
    result = controller(api).step(force=True)
    assert "pod:default/both" in result.skipped
    assert devices(api, "x") == [] and devices(api, "y") == [] and gates(api, "both") == [GATE]


def test_restart_finishes_complete_units_and_releases_partial_ones(api: FakeApi) -> None:
    add(api, claim("x", THREE_G), claim("y", FOUR_G), pod("both", ["x", "y"]))
    first = controller(api)
    original = api.update
    calls: list[str] = []

    def crash_on_gate(kind: str, obj: Obj, *, status: bool = False) -> Obj:
        if kind == "pods" and not status:
            calls.append("gate")
            raise KeyboardInterrupt  # the process dies after writing the claims
        return original(kind, obj, status=status)

    api.update = crash_on_gate  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        first.step(force=True)
    api.update = original  # type: ignore[method-assign]
    held = devices(api, "x") + devices(api, "y")
    assert len(held) == 2 and gates(api, "both") == [GATE]

    second = controller(api)
    result = second.step(force=True)
    assert result.finished == ["pod:default/both"] and not result.solved
    assert devices(api, "x") + devices(api, "y") == held, "nothing re-allocated, nothing lost"
    assert gates(api, "both") == []


def test_restart_releases_a_partly_written_unit_and_places_it_again(api: FakeApi) -> None:
    add(api, claim("x", THREE_G), claim("y", FOUR_G), pod("both", ["x", "y"]))
    x = claim_of(api, "x")
    x["metadata"]["annotations"] = {ALLOCATED_BY: "dead-replica"}
    x["status"] = allocated("gpu-0-mig-4g40gb-5-0")
    api.put("resourceclaims", x)
    ctl = controller(api)
    first = ctl.step(force=True)
    assert first.released == ["pod:default/both"] and devices(api, "x") == []
    second = ctl.step(force=True)
    assert second.placed == ["pod:default/both"]
    assert "-3g40gb-" in devices(api, "x")[0] and devices(api, "y") == ["gpu-0-mig-4g40gb-5-0"]


def test_pods_whose_template_claims_are_not_made_yet_wait(api: FakeApi) -> None:
    templated = pod("t", [])
    templated["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimTemplateName": "tmpl"}]
    add(api, templated)
    ctl = controller(api)
    assert not ctl.step(force=True).solved
    add(api, claim("t-gpu-abcde", THREE_G))
    stored = api.get("pods", "default", "t")
    stored["status"] = {"resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": "t-gpu-abcde"}]}
    api.put("pods", stored)
    assert ctl.step(force=True).placed == ["pod:default/t"]
    assert devices(api, "t-gpu-abcde")


def test_only_the_namespaces_it_is_given(api: FakeApi) -> None:
    add(api, claim("mine", THREE_G, namespace="team-a"), pod("p", ["mine"], namespace="team-a"))
    add(api, claim("theirs", FOUR_G, namespace="team-b"), pod("q", ["theirs"], namespace="team-b"))
    policy = Path(example("first-fit-strands")[0])
    settings = Settings(policy=(policy.read_text(), str(policy)), params=SolveParams(time_limit_s=5, workers=1))
    ctl = Controller(api, Config("scoped", settings, namespaces=("team-a",)), clock=Clock())
    assert ctl.step(force=True).placed == ["pod:team-a/p"]
    assert (api.get("resourceclaims", "team-b", "theirs").get("status") or {}).get("allocation") is None


def test_the_pods_node_selector_is_honoured(api: FakeApi) -> None:
    _, _, slices = example("first-fit-strands")
    for s in slices:  # a second H100, h100-1
        s = {**s, "metadata": {**s["metadata"], "name": s["metadata"]["name"].replace("h100-0", "h100-1")}}
        s["spec"] = {**s["spec"], "nodeName": "h100-1", "pool": {**s["spec"]["pool"], "name": "h100-1"}}
        api.put("resourceslices", s)
    api.put("nodes", node("h100-1"))
    there = pod("there", ["x"])
    there["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "h100-1"}
    nowhere = pod("nowhere", ["y"])
    nowhere["spec"]["nodeSelector"] = {"gpu-pool": "does-not-exist"}
    add(api, claim("x", THREE_G), there, claim("y", THREE_G), nowhere)
    result = controller(api).step(force=True)
    assert result.placed == ["pod:default/there"] and result.unplaced == ["pod:default/nowhere"]
    assert claim_of(api, "x")["status"]["allocation"]["devices"]["results"][0]["pool"] == "h100-1"
    cond = placement_condition(api, "nowhere")
    assert cond is not None and cond["status"] == "False" and "default/y" in cond["message"]
    assert cond["reason"] == "SelectorExcludesAll"
    assert "the pod's node constraints (0 node(s) fit)" in cond["message"]


def test_a_changed_explanation_updates_the_condition_but_the_same_reason_adds_no_event(api: FakeApi) -> None:
    add(api, claim("busy", FOUR_G), claim("late", FOUR_G), pod("p", ["late"]))
    busy = claim_of(api, "busy")
    busy["status"] = allocated("gpu-0-mig-4g40gb-5-0")
    api.put("resourceclaims", busy)
    ctl = controller(api)
    assert ctl.step(force=True).unplaced == ["pod:default/p"]
    first = placement_condition(api, "p")
    other = claim("other", THREE_G)
    other["status"] = allocated("gpu-0-mig-3g40gb-9-4")
    api.put("resourceclaims", other)  # the inventory changes, the reason does not
    ctl.step(force=True)
    second = placement_condition(api, "p")
    assert first is not None and second is not None and first["reason"] == second["reason"]
    assert first["message"] != second["message"] and "default/other" in second["message"]
    assert len(api.of("events")) == 1


@pytest.mark.parametrize("watch", [True, False], ids=["watch", "poll"])
def test_the_run_loop_places_pods_as_they_come(api: FakeApi, watch: bool) -> None:
    """The loop as `controller run` drives it: with watches a pass follows each change although the resync is long;
    without, the poll interval paces it."""
    policy = Path(example("first-fit-strands")[0])
    settings = Settings(policy=(policy.read_text(), str(policy)), params=SolveParams(time_limit_s=5, workers=1))
    config = Config("looping", settings, batch_window_s=0.1, poll_interval_s=0.1, watch=watch, resync_s=60)
    ctl = Controller(api, config)
    if not watch:
        api.watch = None  # type: ignore[assignment,method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run, args=(stop,))
    thread.start()
    try:
        time.sleep(0.3)  # the first pass is done: nothing pending, the loop sleeps until something changes
        add(api, claim("a-three-g", THREE_G), pod("p3", ["a-three-g"]))
        deadline = time.monotonic() + 10
        while gates(api, "p3") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gates(api, "p3") == [] and devices(api, "a-three-g")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
