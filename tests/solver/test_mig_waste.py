"""MIG waste is counted by compute slices as well as memory slots: in the objective and in the summary.

Two 3g.40gb on an H100 hold all eight memory slots but only six of the seven compute slices; a 4g.40gb and a
3g.40gb hold everything. Every solve is re-checked by the solver-free verifier.
"""

from __future__ import annotations

import pytest

from gpupolicy.solver.optimal import solve_optimal
from gpupolicy.solver.problem import ClaimKey, Device, DeviceIndex, DeviceResult, Existing, NodeName, Objective, Problem
from gpupolicy.solver.report import Summary, summarize
from gpupolicy.solver.result import Solution, SolveParams
from gpupolicy.solver.table import node_map
from gpupolicy.solver.verify import verify
from tests.solver.builders import A30_MIG, DRIVER, alt, claim, eligible, mig_gpu, problem

PARAMS = SolveParams(time_limit_s=10, workers=1, seed=0)
OBJECTIVES = [Objective.PACK, Objective.LEAST_FRAGMENTATION]

# H100 placements with 1g.20gb, which holds two memory slots for one compute slice.
H100_WIDE = {"1g.20gb": (2, (0, 2, 4, 6)), "3g.40gb": (4, (0, 4)), "4g.40gb": (4, (0,)), "7g.80gb": (8, (0,))}


def two_h100s(**kw: object) -> tuple[list[Device], Problem]:
    d0, c0 = mig_gpu("node-a", 0)
    d1, c1 = mig_gpu("node-a", 1)
    devices = d0 + d1
    return devices, problem(devices, [], [c0, c1], **kw)


def index(devices: list[Device], name: str) -> DeviceIndex:
    return DeviceIndex(next(i for i, d in enumerate(devices) if d.name == name))


def held(devices: list[Device], *names: str) -> tuple[Existing, ...]:
    return tuple(
        Existing(ClaimKey(f"other/held-{i}"), "other", (DeviceResult("gpu", index(devices, n)),), None)
        for i, n in enumerate(names)
    )


def solve(p: Problem) -> Solution:
    solution = solve_optimal(p, PARAMS)
    assert verify(p, solution) == []
    return solution


def names(devices: list[Device], solution: Solution) -> dict[str, str]:
    return {k: devices[p.results[0].device].name for k, p in solution.placements.items()}


def summary(p: Problem, solution: Solution | None = None) -> Summary:
    return summarize(p, solution or Solution(strategy="optimal", status="OPTIMAL", placements={}))


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_3g_3g_4g_on_two_h100s_pairs_the_4g_with_a_3g(objective: Objective) -> None:
    devices, base = two_h100s(objective=objective)
    claims = [claim(n, [alt(eligible(devices, profile=p))]) for n, p in (("a", "3g.40gb"), ("b", "3g.40gb"))]
    claims.append(claim("c", [alt(eligible(devices, profile="4g.40gb"))]))
    p = problem(devices, claims, list(base.counter_sets), objective=objective)
    got = names(devices, solve(p))
    assert len(got) == 3
    gpu_of_4g = got["default/c"].split("-mig-")[0]
    partner = [k for k in ("default/a", "default/b") if got[k].startswith(gpu_of_4g + "-")]
    assert len(partner) == 1, got  # one 3g shares the 4g's GPU, the other is alone on the second
    s = summary(p, solve(p))
    assert (s.full, s.partial) == (1, 1)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_a_3g_completes_the_4g_gpu_rather_than_stranding_a_slice_next_to_a_3g(objective: Objective) -> None:
    # gpu-0 holds a 3g at slot 0, gpu-1 a 4g at slot 0: both leave slots 4-7 for the new 3g, and counting memory
    # slots alone cannot tell them apart; on gpu-0 one compute slice would be stranded (3 + 3 of 7).
    devices, base = two_h100s()
    existing = held(devices, "gpu-0-mig-3g.40gb-0", "gpu-1-mig-4g.40gb-0")
    c = claim("three", [alt(eligible(devices, profile="3g.40gb"))])
    p = problem(devices, [c], list(base.counter_sets), objective=objective, existing=existing)
    solution = solve(p)
    assert names(devices, solution) == {"default/three": "gpu-1-mig-3g.40gb-4"}
    s = summary(p, solution)
    assert (s.full, s.partial, s.idle) == (1, 1, 0)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_wide_1g_slices_and_a_3g_fill_the_slots_but_not_the_compute(objective: Objective) -> None:
    # 1g.20gb holds two memory slots for one compute slice: two of them and a 3g hold 8/8 slots, 5/7 slices.
    devices, counters = mig_gpu("node-a", 0, H100_WIDE)
    claims = [claim(f"w{i}", [alt(eligible(devices, profile="1g.20gb"))]) for i in range(2)]
    claims.append(claim("big", [alt(eligible(devices, profile="3g.40gb"))]))
    p = problem(devices, claims, [counters], objective=objective)
    solution = solve(p)
    assert len(solution.placements) == 3
    s = summary(p, solution)
    assert (s.full, s.partial) == (0, 1)
    assert s.fragmentation == pytest.approx(2 / 7)


def test_two_3g_on_an_h100_are_partial_with_one_seventh_stranded() -> None:
    devices, p = two_h100s()
    p = problem(devices, [], list(p.counter_sets), existing=held(devices, "gpu-0-mig-3g.40gb-0", "gpu-0-mig-3g.40gb-4"))
    s = summary(p)
    assert (s.gpus, s.full, s.partial, s.idle) == (2, 0, 1, 1)
    assert s.fragmentation == pytest.approx(1 / 7)
    lines = node_map(p, Solution(strategy="optimal", status="OPTIMAL", placements={}), wide=False)
    assert "|AAAABBBB|  8/8 slots, 6/7 compute" in "\n".join(lines)


def test_4g_and_3g_on_an_h100_are_full() -> None:
    devices, p = two_h100s()
    p = problem(devices, [], list(p.counter_sets), existing=held(devices, "gpu-0-mig-4g.40gb-0", "gpu-0-mig-3g.40gb-4"))
    s = summary(p)
    assert (s.full, s.partial, s.fragmentation) == (1, 0, 0.0)


def test_seven_1g_leave_a_memory_slot_stranded() -> None:
    devices, p = two_h100s()
    sevens = [f"gpu-0-mig-1g.10gb-{i}" for i in range(7)]
    p = problem(devices, [], list(p.counter_sets), existing=held(devices, *sevens))
    s = summary(p)
    assert (s.full, s.partial) == (0, 1)
    assert s.fragmentation == pytest.approx(1 / 8)  # 7/7 compute slices, 7/8 memory slots


def test_an_a30_has_four_compute_slices() -> None:
    devices, counters = mig_gpu("node-a", 0, A30_MIG, slots=4)
    p = problem(devices, [], [counters], existing=held(devices, "gpu-0-mig-2g.12gb-0", "gpu-0-mig-1g.6gb-2"))
    s = summary(p)
    assert (s.full, s.partial, s.fragmentation) == (0, 1, pytest.approx(1 / 4))
    lines = node_map(p, Solution(strategy="optimal", status="OPTIMAL", placements={}), wide=False)
    assert "|AAB.|  3/4 slots, 3/4 compute" in "\n".join(lines)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_an_a30_filled_by_pending_claims_is_full(objective: Objective) -> None:
    devices, counters = mig_gpu("node-a", 0, A30_MIG, slots=4)
    claims = [claim("two", [alt(eligible(devices, profile="2g.12gb"))])]
    claims += [claim(f"one-{i}", [alt(eligible(devices, profile="1g.6gb"))]) for i in range(2)]
    p = problem(devices, claims, [counters], objective=objective)
    solution = solve(p)
    assert len(solution.placements) == 3
    s = summary(p, solution)
    assert (s.full, s.partial, s.fragmentation) == (1, 0, 0.0)  # 4/4 slices: a total of 7 would say 3/7 idle


def static_h100(product: str | None, *layout: tuple[str, int]) -> list[Device]:
    out = []
    for profile, start in layout:
        attrs: dict[str, bool | int | str] = {
            f"{DRIVER}/type": "mig",
            f"{DRIVER}/profile": profile,
            f"{DRIVER}/parentUUID": "GPU-1234",
        }
        if product:
            attrs[f"{DRIVER}/productName"] = product
        name = f"gpu-0-mig-{profile}-{start}"
        out.append(Device(DRIVER, "node-a", name, "node-a", "node-a", None, frozenset({NodeName("node-a")}), attrs))
    return out


def test_static_mig_counts_the_models_compute_slices() -> None:
    # Only the configured instances are published: the catalog, through productName, knows an H100 has 7 slices.
    devices = static_h100("NVIDIA H100 80GB HBM3", ("3g.40gb", 0), ("3g.40gb", 4))
    p = problem(devices, [], existing=held(devices, *(d.name for d in devices)))
    s = summary(p)
    assert (s.full, s.partial, s.fragmentation) == (0, 1, pytest.approx(1 / 7))
    lines = node_map(p, Solution(strategy="optimal", status="OPTIMAL", placements={}), wide=False)
    assert "|AB|  2/2 partitions, 6/7 compute" in "\n".join(lines)


def test_static_mig_of_an_unknown_model_counts_its_instances() -> None:
    devices = static_h100(None, ("3g.40gb", 0), ("3g.40gb", 4))
    p = problem(devices, [], existing=held(devices, devices[0].name))
    s = summary(p)
    assert (s.full, s.partial, s.fragmentation) == (0, 1, pytest.approx(1 / 2))  # 3 of the 6 slices it has
