"""Hypothesis: random inventories and claims; every answer verifies and the solver never places
fewer (priority-weighted) claims than first-fit."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpupolicy.solver.firstfit import best_fit, first_fit
from gpupolicy.solver.optimal import solve_optimal
from gpupolicy.solver.problem import (
    ClaimKey,
    Constraint,
    CounterSet,
    Device,
    DeviceIndex,
    DeviceResult,
    Existing,
    Problem,
    Quota,
)
from gpupolicy.solver.result import SolveParams
from gpupolicy.solver.verify import verify
from tests.solver.builders import DRIVER, alt, claim, eligible, gpu, mig_gpu, problem, shared_gpu

PARAMS = SolveParams(time_limit_s=20, workers=1, seed=0)
EXAMPLES = int(os.environ.get("SOLVER_EXAMPLES", "150"))  # e.g. SOLVER_EXAMPLES=2000 for a long run


@st.composite
def inventories(draw: st.DrawFn) -> tuple[list[Device], list[CounterSet]]:
    devices: list[Device] = []
    counter_sets: list[CounterSet] = []
    for n in range(draw(st.integers(1, 3))):
        node = f"node-{n}"
        for i in range(draw(st.integers(0, 3))):
            devices.append(gpu(node, f"gpu-{i}", model=draw(st.sampled_from(["h100", "a100"])), index=i, numa=i % 2))
        if draw(st.booleans()):
            migs, cs = mig_gpu(node, 9)
            devices += migs
            counter_sets.append(cs)
        if draw(st.booleans()):
            devices.append(shared_gpu(node, "shared-0", memory=80, step=draw(st.sampled_from([None, 10, 20]))))
    return devices, counter_sets


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    devices, counter_sets = draw(inventories())
    claims = []
    for c in range(draw(st.integers(1, 6))):
        alternatives = []
        for s in range(draw(st.integers(1, 2))):
            kind = draw(st.sampled_from(["gpu", "h100", "mig", "shared", "all"]))
            name = f"gpu/s{s}"
            if kind == "gpu":
                alternatives.append(alt(eligible(devices, type="gpu"), draw(st.integers(1, 3)), name))
            elif kind == "h100":
                alternatives.append(alt(eligible(devices, model="h100"), 1, name))
            elif kind == "mig":
                profile = draw(st.sampled_from(["1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]))
                alternatives.append(alt(eligible(devices, profile=profile), draw(st.integers(1, 2)), name))
            elif kind == "shared":
                memory = draw(st.integers(5, 60))
                alternatives.append(alt(eligible(devices, type="shared"), 1, name, capacity={"memory": memory}))
            else:
                alternatives.append(alt(eligible(devices, model="a100"), name=name, all_mode=True))
        if len(alternatives) == 1:
            alternatives = [alternatives[0].__class__(**{**alternatives[0].__dict__, "name": "gpu"})]
        constraints = ()
        if draw(st.booleans()):
            constraints = (Constraint(f"{DRIVER}/numa", distinct=draw(st.booleans())),)
        gang = f"pod-{draw(st.integers(0, 2))}" if draw(st.booleans()) else None
        ns = draw(st.sampled_from(["a", "b"]))
        claims.append(
            claim(
                f"c{c}",
                alternatives,
                ns=ns,
                gang=gang,
                constraints=constraints,
                priority=draw(st.sampled_from([1, 1, 10])),
            )
        )
    existing = []
    for i in draw(st.sets(st.integers(0, max(0, len(devices) - 1)), max_size=3)):
        if devices and not devices[i].multi_allocatable:
            existing.append(Existing(ClaimKey(f"old/e{i}"), "old", (DeviceResult("gpu", DeviceIndex(i)),)))
    quotas = (Quota("a", "devices", draw(st.integers(0, 4))),) if draw(st.booleans()) else ()
    p = problem(devices, claims, counter_sets, quotas=quotas)
    # existing allocations must themselves respect counters: keep only those first-fit could have made
    return _consistent(p, existing)


def _consistent(p: Problem, existing: list[Existing]) -> Problem:
    from gpupolicy.solver.result import Solution

    kept: list[Existing] = []
    for e in existing:
        trial = Problem(p.devices, p.claims, p.counter_sets, p.nodes, tuple([*kept, e]), p.quotas)
        if not verify(trial, Solution("none")):
            kept.append(e)
    return Problem(p.devices, p.claims, p.counter_sets, p.nodes, tuple(kept), p.quotas)


def weight(p: Problem, placed: set[ClaimKey]) -> int:
    return sum(c.priority for c in p.claims if c.key in placed)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_solver_verifies_and_beats_first_fit(p: Problem) -> None:
    ff, bf, opt = first_fit(p), best_fit(p), solve_optimal(p, PARAMS)
    for solution in (ff, bf, opt):
        assert verify(p, solution) == [], solution.strategy
    assert opt.proven_optimal
    assert weight(p, set(opt.placements)) >= weight(p, set(ff.placements))
    assert weight(p, set(opt.placements)) >= weight(p, set(bf.placements))


@st.composite
def simple_problems(draw: st.DrawFn) -> Problem:
    devices = []
    for n in range(draw(st.integers(1, 4))):
        for i in range(draw(st.integers(1, 4))):
            devices.append(gpu(f"node-{n}", f"gpu-{i}", model=draw(st.sampled_from(["h100", "a100"])), index=i))
    claims = []
    for c in range(draw(st.integers(1, 8))):
        which = draw(st.sampled_from([{}, {"model": "h100"}, {"model": "a100"}]))
        claims.append(
            claim(
                f"c{c}",
                [alt(eligible(devices, **which), draw(st.integers(1, 3)))],
                priority=draw(st.sampled_from([1, 1, 3])),
            )
        )
    existing = [
        Existing(ClaimKey(f"old/e{i}"), "old", (DeviceResult("gpu", DeviceIndex(i)),))
        for i in draw(st.sets(st.integers(0, len(devices) - 1), max_size=2))
    ]
    return problem(devices, claims, existing=tuple(existing))


@settings(max_examples=max(1, EXAMPLES * 2 // 3), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(simple_problems())
def test_aggregated_model_matches_full_model(p: Problem) -> None:
    from gpupolicy.solver.aggregate import applicable

    assert applicable(p)
    fast = solve_optimal(p, PARAMS)
    full = solve_optimal(p, SolveParams(time_limit_s=20, workers=1, seed=0, aggregate=False))
    for solution in (fast, full):
        assert verify(p, solution) == []
        assert solution.proven_optimal
    assert weight(p, set(fast.placements)) == weight(p, set(full.placements))
    assert weight(p, set(fast.placements)) >= weight(p, set(first_fit(p).placements))
