"""Hypothesis: random clusters already running claims of random priorities, random pending claims, budgets and
movable pods. Every plan that preempts or moves verifies (rules, budgets, minimality), never places less
priority-weighted work than giving nothing up, and with budgets of zero and nothing movable gives nothing up."""

from __future__ import annotations

import dataclasses
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpupolicy.solver.firstfit import first_fit
from gpupolicy.solver.problem import Claim, Device, Disruption, Eviction, Existing, Problem
from gpupolicy.solver.result import Solution, SolveParams
from gpupolicy.solver.solve import solve
from gpupolicy.solver.verify import verify
from tests.solver.builders import alt, claim, eligible, problem
from tests.solver.preempting import weighed
from tests.solver.test_generated import inventories

PARAMS = SolveParams(time_limit_s=20, workers=1, seed=0, explain=False)
EXAMPLES = int(os.environ.get("SOLVER_EXAMPLES", "150")) // 2


@st.composite
def some_claims(draw: st.DrawFn, devices: list[Device], prefix: str, most: int) -> list[Claim]:
    out = []
    for c in range(draw(st.integers(1, most))):
        kind = draw(st.sampled_from(["gpu", "mig", "mig", "shared"]))
        if kind == "gpu":
            alternative = alt(eligible(devices, type="gpu"), draw(st.integers(1, 2)))
        elif kind == "mig":
            profile = draw(st.sampled_from(["1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]))
            alternative = alt(eligible(devices, profile=profile))
        else:
            alternative = alt(eligible(devices, type="shared"), capacity={"memory": draw(st.integers(10, 60))})
        gang = f"{prefix}pod-{draw(st.integers(0, 2))}" if draw(st.booleans()) else None
        out.append(claim(f"{prefix}{c}", [alternative], ns=draw(st.sampled_from(["a", "b"])), gang=gang))
    return out


@st.composite
def busy_clusters(draw: st.DrawFn) -> Problem:
    """Claims first-fit placed become the running ones (levels, pods, budgets, movable); then new claims wait."""
    devices, counter_sets = draw(inventories())
    before = problem(devices, draw(some_claims(devices, "old", 10)), counter_sets)
    running = first_fit(before)
    existing: list[Existing] = []
    units: dict[str, tuple[int, Eviction]] = {}
    for key, placement in sorted(running.placements.items()):
        old = before.claim_index[key]
        pod = f"{old.namespace}/{old.gang or old.name}"
        if pod not in units:
            budgets = (f"{old.namespace}/pdb",) if draw(st.booleans()) else ()
            units[pod] = (
                draw(st.sampled_from([0, 0, 5])),
                Eviction(f"pod:{pod}", (pod,), budgets, draw(st.booleans())),
            )
        level, eviction = units[pod]
        existing.append(Existing(key, old.namespace, placement.results, placement.node, level=level, eviction=eviction))
    moving = [
        dataclasses.replace(before.claim_index[e.claim], gang=f"move:{e.eviction.pods[0]}", moving=True, level=e.level)
        for e in existing
        if e.eviction is not None and e.eviction.movable
    ]
    copies = draw(st.lists(st.sampled_from(before.claims), max_size=3))  # the same shapes: contention
    drawn = [dataclasses.replace(c, name=f"again-{i}-{c.name}", gang=None) for i, c in enumerate(copies)]
    drawn += draw(some_claims(devices, "new", 3))
    pending = [dataclasses.replace(c, level=draw(st.sampled_from([0, 5, 10, 10]))) for c in drawn]
    claims, existing = weighed([*pending, *moving], existing)
    budgets = {b: draw(st.integers(0, 2)) for e in existing if e.eviction for b in e.eviction.budgets}
    mostly = st.sampled_from([True, True, False])
    disruption = Disruption(draw(mostly), draw(mostly), draw(st.sampled_from([None, None, 0, 1])))
    return problem(devices, claims, counter_sets, existing=tuple(existing), disruption=disruption, budgets=budgets)


def placed_weight(p: Problem, s: Solution) -> int:
    gone = s.preempted.keys()
    pending = sum(c.priority for c in p.claims if not c.moving and c.key in s.placements)
    return pending + sum(e.weight for e in p.existing if e.eviction is not None and e.claim not in gone)


@settings(max_examples=max(1, EXAMPLES), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(busy_clusters())
def test_plans_that_give_up_allocations_verify(p: Problem) -> None:
    plan = solve(p, "optimal", PARAMS)
    assert verify(p, plan) == []
    assert plan.proven_optimal, plan.status
    still = solve(dataclasses.replace(p, disruption=Disruption()), "optimal", PARAMS)
    assert placed_weight(p, plan) >= placed_weight(p, still)
    if not p.disruption.preempt:
        assert plan.preempted == {}
    if not p.disruption.defragment:
        assert plan.moved == {}
    for preempted in plan.preempted.values():
        assert all(p.claim_index[k].level > preempted.level for k in preempted.for_)
