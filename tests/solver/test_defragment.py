"""Defragmentation in the solver: movable allocations are moved (and placed again) to place a pending claim."""

from __future__ import annotations

import dataclasses

from gpupolicy.solver.problem import Claim, Disruption
from tests.solver.builders import alt, claim, eligible, mig_gpu
from tests.solver.preempting import fixed, held, preemption_problem, solved

DEFRAG = Disruption(defragment=True)


def two_h100s() -> tuple[list, list, dict[str, int]]:  # type: ignore[type-arg]
    d0, c0 = mig_gpu("node-a", 0)
    d1, c1 = mig_gpu("node-a", 1)
    devices = d0 + d1
    return devices, [c0, c1], {d.name: i for i, d in enumerate(devices)}


def replacement(name: str, devices: list, ns: str = "low", level: int = 0) -> Claim:  # type: ignore[type-arg]
    """The new place of a movable 1g claim: any 1g slice."""
    base = claim(name, [alt(eligible(devices, profile="1g.10gb"))], ns=ns, gang=f"move:{ns}/{name}")
    return dataclasses.replace(base, moving=True, level=level)


def four_g(devices: list) -> Claim:  # type: ignore[type-arg]
    return dataclasses.replace(claim("big", [alt(eligible(devices, profile="4g.40gb"))], ns="team"), level=0)


def test_moving_one_1g_makes_a_4g_fit() -> None:
    """GPU 0: a movable 1g at slot 1; GPU 1: a fixed 3g at slots 0-3. The 4g (same priority: no preemption) fits
    only once the 1g moves; it moves to a slot that keeps both GPUs' remaining geometry useful."""
    devices, sets, by_name = two_h100s()
    existing = [
        held("small", [by_name["gpu-0-mig-1g.10gb-1"]], movable=True),
        fixed("three", [by_name["gpu-1-mig-3g.40gb-0"]]),
    ]
    p = preemption_problem(devices, [four_g(devices), replacement("small", devices)], existing, sets, disruption=DEFRAG)
    s = solved(p)
    assert set(s.moved) == {"low/small"} and s.preempted == {}
    assert s.moved["low/small"].for_ == ("team/big",)
    assert devices[s.placements["team/big"].results[0].device].name == "gpu-0-mig-4g.40gb-0"
    new = devices[s.placements["low/small"].results[0].device].name
    assert "-mig-1g.10gb-" in new and int(new.rsplit("-", 1)[1]) >= 4, new  # clear of the 4g's slots 0-3


def test_nothing_moves_without_need() -> None:
    devices, sets, by_name = two_h100s()
    existing = [held("small", [by_name["gpu-0-mig-1g.10gb-1"]], movable=True)]
    p = preemption_problem(devices, [four_g(devices), replacement("small", devices)], existing, sets, disruption=DEFRAG)
    s = solved(p)
    assert s.moved == {} and "low/small" not in s.placements
    assert devices[s.placements["team/big"].results[0].device].name == "gpu-1-mig-4g.40gb-0"


def test_the_move_limit_and_unmovable_pods() -> None:
    devices, sets, by_name = two_h100s()
    existing = [
        held("small", [by_name["gpu-0-mig-1g.10gb-1"]], movable=True),
        fixed("three", [by_name["gpu-1-mig-3g.40gb-0"]]),
    ]
    claims = [four_g(devices), replacement("small", devices)]
    none = preemption_problem(devices, claims, existing, sets, disruption=Disruption(defragment=True, max_moves=0))
    s = solved(none)
    assert s.moved == {} and "team/big" not in s.placements
    pinned = [held("small", [by_name["gpu-0-mig-1g.10gb-1"]]), existing[1]]
    s = solved(preemption_problem(devices, [four_g(devices)], pinned, sets, disruption=DEFRAG))
    assert s.moved == {} and "team/big" not in s.placements


def test_fewest_moves() -> None:
    """GPU 0 has two movable 1g slices in slots 0-3, GPU 1 one: the 4g goes to GPU 1, one move."""
    devices, sets, by_name = two_h100s()
    existing = [
        held("a", [by_name["gpu-0-mig-1g.10gb-0"]], movable=True),
        held("b", [by_name["gpu-0-mig-1g.10gb-2"]], movable=True),
        held("c", [by_name["gpu-1-mig-1g.10gb-3"]], movable=True),
    ]
    claims = [four_g(devices), *(replacement(n, devices) for n in "abc")]
    s = solved(preemption_problem(devices, claims, existing, sets, disruption=DEFRAG))
    assert set(s.moved) == {"low/c"}
    assert devices[s.placements["team/big"].results[0].device].name == "gpu-1-mig-4g.40gb-0"


def test_moving_beats_preempting() -> None:
    """A level-10 4g; GPU 0 holds a movable level-0 1g at slot 0, GPU 1 a level-0 unmovable 1g at slot 0: with
    both on, the movable one moves and nothing is evicted for good."""
    devices, sets, by_name = two_h100s()
    existing = [
        held("mover", [by_name["gpu-0-mig-1g.10gb-0"]], movable=True),
        held("stayer", [by_name["gpu-1-mig-1g.10gb-0"]]),
    ]
    big = dataclasses.replace(four_g(devices), level=10)
    both = Disruption(preempt=True, defragment=True)
    s = solved(preemption_problem(devices, [big, replacement("mover", devices)], existing, sets, disruption=both))
    assert set(s.moved) == {"low/mover"} and s.preempted == {}
