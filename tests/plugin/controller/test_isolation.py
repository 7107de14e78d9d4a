"""One bad unit never stops the controller: an exception while compiling, solving or writing one unit fails that
unit (a condition and an Event say why), and the other units of the batch are placed."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.controller import placer
from gpupolicy.plugin.controller.loop import Config, Controller
from gpupolicy.plugin.controller.placer import Settings
from gpupolicy.plugin.controller.report import CONDITION
from gpupolicy.plugin.controller.snapshot import GATE
from gpupolicy.plugin.kube import Obj
from gpupolicy.solver import compile as solver_compile
from gpupolicy.solver.problem import Problem
from gpupolicy.solver.result import SolveParams
from tests.logcapture import captured
from tests.plugin.controller.fakeapi import FakeApi, claim, example, pod, strands

THREE_G, FOUR_G = "mig-3g.gpupolicy.dev", "mig-4g.gpupolicy.dev"


@pytest.fixture
def api() -> FakeApi:
    fake = strands(("h100-0", "h100-1"))  # a second H100, h100-1: room for all three pods
    good = (claim("a-three-g", THREE_G), pod("p3", ["a-three-g"]), claim("b-four-g", FOUR_G), pod("p4", ["b-four-g"]))
    for obj in good:
        fake.put("pods" if obj["kind"] == "Pod" else "resourceclaims", obj)
    bad = claim("bad", THREE_G)
    bad["metadata"]["labels"] = {"hostile": "yes"}
    fake.put("resourceclaims", bad)
    fake.put("pods", pod("pbad", ["bad"]))
    return fake


def settings() -> Settings:
    policy = Path(example("first-fit-strands")[0])
    return Settings(policy=(policy.read_text(), str(policy)), params=SolveParams(time_limit_s=5, workers=1))


def controller(api: FakeApi, **config: Any) -> Controller:
    return Controller(api, Config("isolating", settings(), **config))


def gates(api: FakeApi, name: str) -> list[str]:
    return [g["name"] for g in api.get("pods", "default", name)["spec"].get("schedulingGates") or []]


def condition(api: FakeApi, name: str) -> Obj | None:
    conditions = (api.get("pods", "default", name).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == CONDITION), None)


def allocation(api: FakeApi, name: str) -> Obj | None:
    return (api.get("resourceclaims", "default", name).get("status") or {}).get("allocation")


@pytest.fixture
def hostile_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling the claim named "bad" raises, as a CEL evaluation blowing up on hostile input would."""
    original = solver_compile._claim

    def failing(ctx: Any, item: Any) -> Any:
        if item.claim.metadata.name == "bad":
            raise OverflowError("format(): precision 99999999999 too large")
        return original(ctx, item)

    monkeypatch.setattr(solver_compile, "_claim", failing)


def assert_failed_with(api: FakeApi, reason: str, text: str) -> None:
    cond = condition(api, "pbad")
    assert cond is not None and cond["status"] == "False" and cond["reason"] == reason, cond
    assert "default/bad" in cond["message"] and text in cond["message"], cond["message"]
    events = [e for e in api.of("events") if e["involvedObject"]["name"] == "pbad"]
    assert len(events) == 1 and events[0]["reason"] == "FailedPlacement" and events[0]["message"] == cond["message"]
    assert gates(api, "pbad") == [GATE] and allocation(api, "bad") is None


@pytest.mark.usefixtures("hostile_compile")
def test_a_unit_whose_claims_do_not_compile_fails_alone(api: FakeApi) -> None:
    ctl = controller(api)
    with captured(level="info") as stream:
        result = ctl.step(force=True)
    assert sorted(result.placed) == ["pod:default/p3", "pod:default/p4"]
    assert result.unplaced == ["pod:default/pbad"]
    assert gates(api, "p3") == [] and gates(api, "p4") == []
    assert_failed_with(api, "CompileFailed", "OverflowError: format(): precision 99999999999 too large")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    errors = [line for line in lines if line["level"] == "error"]
    assert [(e["unit"], e["stage"]) for e in errors] == [("pod:default/pbad", "compile")], errors
    assert "exc" not in errors[0] and "OverflowError" in errors[0]["error"]
    assert not ctl.step(force=True).solved, "nothing changed for it: not compiled again"
    assert len(api.of("events")) == 1


def test_a_unit_whose_solve_raises_fails_alone(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    original = placer.solve

    def failing(problem: Problem, strategy: str, params: SolveParams) -> Any:
        if any(c.name == "bad" for c in problem.claims):
            raise RuntimeError("CP-SAT: model invalid")
        return original(problem, strategy, params)

    monkeypatch.setattr(placer, "solve", failing)
    result = controller(api).step(force=True)
    assert sorted(result.placed) == ["pod:default/p3", "pod:default/p4"]
    assert result.unplaced == ["pod:default/pbad"]
    assert_failed_with(api, "SolveFailed", "RuntimeError: CP-SAT: model invalid")


def test_a_unit_whose_write_raises_fails_alone(api: FakeApi) -> None:
    def hostile(kind: str, obj: Obj, status: bool) -> None:
        if kind == "resourceclaims" and obj["metadata"]["name"] == "bad":
            raise TypeError("unhashable type: 'dict'")

    api.before_update = hostile
    result = controller(api, write_parallelism=1).step(force=True)
    assert sorted(result.placed) == ["pod:default/p3", "pod:default/p4"], result
    assert "pod:default/pbad" in result.unplaced
    assert_failed_with(api, "WriteFailed", "TypeError: unhashable type: 'dict'")


@pytest.mark.usefixtures("hostile_compile")
def test_the_run_loop_keeps_placing_while_a_bad_unit_exists(api: FakeApi) -> None:
    config = Config("looping", settings(), batch_window_s=0.1, poll_interval_s=0.1, watch=False)
    ctl = Controller(api, config)
    stop = threading.Event()
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            ctl.run(stop)
        except BaseException as exc:
            crashed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while (gates(api, "p3") or gates(api, "p4")) and time.monotonic() < deadline and not crashed:
            time.sleep(0.05)
        assert crashed == [] and thread.is_alive()
        assert gates(api, "p3") == [] and gates(api, "p4") == []
        time.sleep(0.5)  # more passes: the bad unit is still there
        assert crashed == [] and thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive() and crashed == []
    assert gates(api, "pbad") == [GATE]
