"""Preemption in the solver: small cases whose optimal victim sets are known; every answer verified."""

from __future__ import annotations

import dataclasses

from gpupolicy.solver.problem import Claim, Disruption
from gpupolicy.solver.verify import verify
from tests.solver.builders import alt, claim, eligible, gpu, mig_gpu, shared_gpu
from tests.solver.preempting import fixed, held, preempted, preemption_problem, solved


def urgent(name: str, alternatives: list, level: int = 10, **kw: object) -> Claim:  # type: ignore[type-arg]
    return dataclasses.replace(claim(name, alternatives, ns="prod", **kw), level=level)  # type: ignore[arg-type]


def gpus(n: int, node: str = "node-a") -> list:  # type: ignore[type-arg]
    return [gpu(node, f"gpu-{i}", index=i) for i in range(n)]


def test_lowest_priority_victim_and_only_one() -> None:
    devices = gpus(3)
    p = preemption_problem(
        devices,
        [urgent("u", [alt(eligible(devices))])],
        [held("a", [0], level=5), held("b", [1]), held("c", [2], level=5)],
    )
    s = solved(p)
    assert preempted(s) == {"low/b": ("prod/u",)}
    assert s.placements["prod/u"].results[0].device == 1
    assert s.preempted["low/b"].level == 0 and s.preempted["low/b"].pods == ("low/b",)


def test_equal_priority_is_never_preempted() -> None:
    devices = gpus(2)
    p = preemption_problem(
        devices, [urgent("u", [alt(eligible(devices))], level=5)], [held("a", [0], level=5), held("b", [1], level=7)]
    )
    s = solved(p)
    assert s.preempted == {} and "prod/u" not in s.placements
    assert s.unplaced["prod/u"]


def test_what_an_eviction_frees_goes_to_higher_priority_only() -> None:
    """Two GPUs held at level 0; an urgent claim and a level-0 claim wait: one eviction, for the urgent one. The
    level-0 claim is not placed on a second victim's GPU (equal priority) nor on the first one's leftovers."""
    devices = gpus(2)
    low = dataclasses.replace(claim("late", [alt(eligible(devices))], ns="batch"), level=0)
    p = preemption_problem(devices, [urgent("u", [alt(eligible(devices))]), low], [held("a", [0]), held("b", [1])])
    s = solved(p)
    assert list(s.preempted) in (["low/a"], ["low/b"])
    assert set(s.placements) == {"prod/u"}


def test_leftovers_of_a_victim_stay_for_the_next_solve() -> None:
    """The urgent claim needs 1 of a victim's 2 GPUs; the other stays free now (no lower claim takes it)."""
    devices = gpus(2)
    low = dataclasses.replace(claim("late", [alt(eligible(devices))], ns="batch"), level=0)
    p = preemption_problem(devices, [urgent("u", [alt(eligible(devices))]), low], [held("pair", [0, 1])])
    s = solved(p)
    assert preempted(s) == {"low/pair": ("prod/u",)}
    assert set(s.placements) == {"prod/u"}


def test_mig_victim_is_the_one_on_the_slots_needed() -> None:
    """A 4g.40gb fits only at slots 0-3. A level-0 3g sits at slots 4-7 and a level-5 1g at slot 2: the level-5 one
    must go, the cheaper one does not help."""
    devices, cs = mig_gpu("node-a", 0)
    by_name = {d.name: i for i, d in enumerate(devices)}
    victims = [held("three", [by_name["gpu-0-mig-3g.40gb-4"]]), held("one", [by_name["gpu-0-mig-1g.10gb-2"]], level=5)]
    p = preemption_problem(devices, [urgent("big", [alt(eligible(devices, profile="4g.40gb"))])], victims, [cs])
    s = solved(p)
    assert preempted(s) == {"low/one": ("prod/big",)}
    assert devices[s.placements["prod/big"].results[0].device].name == "gpu-0-mig-4g.40gb-0"


def test_mig_two_small_victims_rather_than_one_higher() -> None:
    """Slots 0-3 hold two level-0 1g slices; slots 4-7 a level-5 3g. A 7g needs the whole GPU (all three), a 4g only
    the two 1g ones."""
    devices, cs = mig_gpu("node-a", 0)
    by_name = {d.name: i for i, d in enumerate(devices)}
    victims = [
        held("one-a", [by_name["gpu-0-mig-1g.10gb-0"]]),
        held("one-b", [by_name["gpu-0-mig-1g.10gb-3"]]),
        held("three", [by_name["gpu-0-mig-3g.40gb-4"]], level=5),
    ]
    p = preemption_problem(devices, [urgent("big", [alt(eligible(devices, profile="4g.40gb"))])], victims, [cs])
    assert preempted(solved(p)) == {"low/one-a": ("prod/big",), "low/one-b": ("prod/big",)}
    p7 = preemption_problem(devices, [urgent("all", [alt(eligible(devices, profile="7g.80gb"))])], victims, [cs])
    assert set(solved(p7).preempted) == {"low/one-a", "low/one-b", "low/three"}


def test_shares_the_victim_whose_share_makes_room() -> None:
    """80 GiB shared: shares of 30 and 50 at level 0; 40 are needed. Only evicting the 50 makes room."""
    devices = [shared_gpu("node-a", "gpu-0")]
    victims = [held("thirty", [0], consumed={"memory": 30}), held("fifty", [0], consumed={"memory": 50})]
    p = preemption_problem(devices, [urgent("u", [alt((0,), capacity={"memory": 40})])], victims)
    assert preempted(solved(p)) == {"low/fifty": ("prod/u",)}


def test_a_pods_claims_go_together_and_the_single_is_cheaper() -> None:
    """One pod holds two GPUs through two claims; another pod one GPU: evict the single pod."""
    devices = gpus(3)
    victims = [held("pair-0", [0], pod="pair"), held("pair-1", [1], pod="pair"), held("solo", [2])]
    p = preemption_problem(devices, [urgent("u", [alt(eligible(devices))])], victims)
    assert preempted(solved(p)) == {"low/solo": ("prod/u",)}
    two = [
        urgent("g-0", [alt(eligible(devices))], gang="prod/g"),
        urgent("g-1", [alt(eligible(devices))], gang="prod/g"),
    ]
    s = solved(preemption_problem(devices, two, victims))
    assert set(s.preempted) == {"low/pair-0", "low/pair-1"}, "the pair's two GPUs, not the pair and the solo"
    assert set(s.placements) == {"prod/g-0", "prod/g-1"}


def test_a_budget_that_forbids_the_cheapest_victim() -> None:
    devices = gpus(2)
    victims = [held("guarded", [0], budgets=("low/pdb",)), held("other", [1], level=3)]
    args = ([urgent("u", [alt(eligible(devices))])], victims)
    assert preempted(solved(preemption_problem(devices, *args, budgets={"low/pdb": 1}))) == {"low/guarded": ("prod/u",)}
    assert preempted(solved(preemption_problem(devices, *args, budgets={"low/pdb": 0}))) == {"low/other": ("prod/u",)}


def test_budgets_forbid_everything() -> None:
    devices = gpus(1)
    p = preemption_problem(
        devices, [urgent("u", [alt((0,))])], [held("a", [0], budgets=("low/pdb",))], budgets={"low/pdb": 0}
    )
    s = solved(p)
    assert s.preempted == {} and "prod/u" not in s.placements


def test_fixed_allocations_and_preemption_off() -> None:
    devices = gpus(2)
    p = preemption_problem(devices, [urgent("u", [alt(eligible(devices))])], [fixed("kept", [0]), held("b", [1])],
                           disruption=Disruption())  # fmt: skip
    s = solved(p)
    assert s.preempted == {} and "prod/u" not in s.placements
    on = preemption_problem(devices, [urgent("u", [alt(eligible(devices))])], [fixed("kept", [0]), held("b", [1])])
    assert preempted(solved(on)) == {"low/b": ("prod/u",)}


def test_a_kept_claim_outweighs_a_lower_pending_one() -> None:
    """Pending claims of levels 10 and 5, GPUs held at levels 0 and 7. The level-10 claim takes the level-0 GPU;
    evicting the level-7 claim to place the level-5 one is not allowed, and placing the level-5 claim on the level-0
    GPU while the level-10 one takes the level-7 GPU would lose more than it gains."""
    devices = gpus(2)
    mid = urgent("mid", [alt(eligible(devices))], level=5)
    p = preemption_problem(
        devices, [urgent("top", [alt(eligible(devices))]), mid], [held("zero", [0]), held("seven", [1], level=7)]
    )
    s = solved(p)
    assert preempted(s) == {"low/zero": ("prod/top",)}
    assert set(s.placements) == {"prod/top"}


def test_each_pending_claim_takes_the_victim_below_it() -> None:
    """Levels 10 and 5 pending, GPUs held at levels 0 and 3: both victims go, the level-5 claim on the level-0 or
    level-3 GPU, never on a GPU freed from a claim at its own level or above."""
    devices = gpus(2)
    mid = urgent("mid", [alt(eligible(devices))], level=5)
    p = preemption_problem(
        devices, [urgent("top", [alt(eligible(devices))]), mid], [held("zero", [0]), held("three", [1], level=3)]
    )
    s = solved(p)
    assert set(s.preempted) == {"low/zero", "low/three"}
    assert set(s.placements) == {"prod/top", "prod/mid"}
    assert all(f in (("prod/mid",), ("prod/top",)) for f in preempted(s).values())


def test_verifier_catches_a_needless_or_wrong_eviction() -> None:
    devices = gpus(3)
    p = preemption_problem(
        devices, [urgent("u", [alt(eligible(devices))])], [held("a", [0]), held("b", [1]), held("c", [2], level=20)]
    )
    s = solved(p)
    victim = next(iter(s.preempted))
    other = "low/b" if victim == "low/a" else "low/a"
    extra = dataclasses.replace(s.preempted[victim], claim=other)
    needless = dataclasses.replace(s, preempted={**s.preempted, other: extra})
    assert any("could stay" in e for e in verify(p, needless))
    wrong = dataclasses.replace(s, preempted={"low/c": dataclasses.replace(s.preempted[victim], claim="low/c")})
    assert any("not an allocation this solve may give up" in e for e in verify(p, wrong))
