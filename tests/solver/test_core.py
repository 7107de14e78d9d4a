"""The solver and the baselines on small hand-written problems; every answer is verified."""

from __future__ import annotations

from gpupolicy.solver.firstfit import best_fit, first_fit
from gpupolicy.solver.optimal import solve_optimal
from gpupolicy.solver.problem import (
    ClaimKey,
    Constraint,
    DeviceIndex,
    DeviceResult,
    Existing,
    Objective,
    Problem,
    Quota,
)
from gpupolicy.solver.result import Solution, SolveParams
from gpupolicy.solver.verify import verify
from tests.solver.builders import alt, claim, eligible, gpu, mig_gpu, problem, shared_gpu

PARAMS = SolveParams(time_limit_s=10, workers=1, seed=0)


def solve_all(p: Problem) -> dict[str, Solution]:
    out = {"first-fit": first_fit(p), "best-fit": best_fit(p), "optimal": solve_optimal(p, PARAMS)}
    for name, solution in out.items():
        assert verify(p, solution) == [], name
    return out


def test_first_fit_strands_4g_after_3g_and_optimal_places_both() -> None:
    devices, cs = mig_gpu("node-a", 0)
    c3 = claim("mig-3g", [alt(eligible(devices, profile="3g.40gb"))])
    c4 = claim("mig-4g", [alt(eligible(devices, profile="4g.40gb"))])
    p = problem(devices, [c3, c4], [cs])
    got = solve_all(p)
    assert set(got["first-fit"].placements) == {"default/mig-3g"}
    assert set(got["optimal"].placements) == {"default/mig-3g", "default/mig-4g"}
    placed_3g = got["optimal"].placements[c3.key].results[0].device
    assert devices[placed_3g].name == "gpu-0-mig-3g.40gb-4"


def test_count_and_node_locality() -> None:
    devices = [gpu(f"node-{n}", f"gpu-{i}", index=i) for n in "ab" for i in range(2)]
    c = claim("two", [alt(eligible(devices), count=2)])
    big = claim("three", [alt(eligible(devices), count=3)])
    got = solve_all(problem(devices, [c, big]))
    assert set(got["optimal"].placements) == {"default/two"}
    nodes = {devices[r.device].node_name for r in got["optimal"].placements[c.key].results}
    assert len(nodes) == 1


def test_gang_all_or_nothing() -> None:
    devices = [gpu("node-a", f"gpu-{i}", index=i) for i in range(3)]
    a = claim("pod-a-0", [alt(eligible(devices), count=2)], gang="pod-a")
    b = claim("pod-a-1", [alt(eligible(devices), count=2)], gang="pod-a")
    single = claim("single", [alt(eligible(devices), count=1)])
    got = solve_all(problem(devices, [a, b, single]))
    assert set(got["optimal"].placements) == {"default/single"}


def test_first_available_prefers_earlier_subrequest() -> None:
    devices = [gpu("node-a", "gpu-0", model="h100"), gpu("node-a", "gpu-1", model="a100", index=1)]
    c = claim(
        "fa",
        [alt(eligible(devices, model="h100"), name="gpu/big"), alt(eligible(devices, model="a100"), name="gpu/small")],
    )
    d = claim("h100-only", [alt(eligible(devices, model="h100"))])
    got = solve_all(problem(devices, [c, d]))
    assert set(got["optimal"].placements) == {"default/fa", "default/h100-only"}
    assert got["optimal"].placements[c.key].results[0].request == "gpu/small"
    alone = solve_all(problem(devices, [c]))
    assert alone["optimal"].placements[c.key].results[0].request == "gpu/big"


def test_first_available_order_outranks_fragmentation() -> None:
    """A free whole GPU (first choice) beats a MIG slice on a GPU already in use, even though the slice would
    leave a node empty (pack) or a whole GPU free: Kubernetes tries subrequests strictly in order."""
    migs, cs = mig_gpu("node-a", 0)
    devices = [*migs, gpu("node-b", "gpu-0")]
    held = eligible(devices, profile="1g.10gb")[0]
    existing = Existing(ClaimKey("other/held"), "other", (DeviceResult("gpu", held),), None)
    hotfix = claim(
        "hotfix",
        [alt(eligible(devices, type="gpu"), name="gpu/whole"), alt(eligible(devices, type="mig"), name="gpu/mig")],
    )
    for objective in (Objective.PACK, Objective.LEAST_FRAGMENTATION):
        got = solve_all(problem(devices, [hotfix], [cs], existing=(existing,), objective=objective))
        assert got["optimal"].placements[hotfix.key].results[0].request == "gpu/whole", objective
    # Only when the whole GPU lets a higher-priority claim be placed does the claim fall back to a slice.
    whole_only = claim("whole-only", [alt(eligible(devices, type="gpu"))], priority=5)
    got = solve_all(problem(devices, [hotfix, whole_only], [cs], existing=(existing,)))
    assert set(got["optimal"].placements) == {hotfix.key, whole_only.key}
    assert got["optimal"].placements[hotfix.key].results[0].request == "gpu/mig"


def test_match_and_distinct_attribute() -> None:
    devices = [gpu("node-a", f"gpu-{i}", index=i, numa=i % 2) for i in range(4)]
    numa = "gpu.example.com/numa"
    same = claim("same-numa", [alt(eligible(devices), count=2)], constraints=(Constraint(numa),))
    got = solve_all(problem(devices, [same]))
    values = {devices[r.device].attributes[numa] for r in got["optimal"].placements[same.key].results}
    assert len(values) == 1
    distinct = claim("spread", [alt(eligible(devices), count=3)], constraints=(Constraint(numa, distinct=True),))
    got = solve_all(problem(devices, [distinct]))
    assert got["optimal"].placements == {} and got["first-fit"].placements == {}


def test_shared_capacity_sums_within_capacity() -> None:
    devices = [shared_gpu("node-a", "gpu-0", memory=80, step=10)]
    claims = [claim(f"s{i}", [alt((DeviceIndex(0),), capacity={"memory": 25})]) for i in range(4)]
    got = solve_all(problem(devices, claims))
    assert len(got["optimal"].placements) == 2  # 25 rounds up to 30; 3 * 30 > 80
    shares = {r.share_id for p in got["optimal"].placements.values() for r in p.results}
    assert len(shares) == 2


def test_existing_allocations_are_fixed() -> None:
    devices, cs = mig_gpu("node-a", 0)
    held = eligible(devices, profile="4g.40gb")[0]
    existing = Existing(ClaimKey("other/held"), "other", (DeviceResult("gpu", held),), None)
    c3 = claim("mig-3g", [alt(eligible(devices, profile="3g.40gb"))])
    c3b = claim("mig-3g-b", [alt(eligible(devices, profile="3g.40gb"))])
    got = solve_all(problem(devices, [c3, c3b], [cs], existing=(existing,)))
    assert len(got["optimal"].placements) == 1


def test_quota_limits_devices_per_namespace() -> None:
    devices = [gpu("node-a", f"gpu-{i}", index=i) for i in range(4)]
    claims = [claim(f"c{i}", [alt(eligible(devices), count=1)], ns="team-a") for i in range(3)]
    got = solve_all(problem(devices, claims, quotas=(Quota("team-a", "devices", 2),)))
    assert len(got["optimal"].placements) == 2


def test_all_mode_takes_every_device_of_the_node() -> None:
    devices = [gpu("node-a", f"gpu-{i}", index=i) for i in range(2)] + [gpu("node-b", "gpu-0")]
    c = claim("all", [alt(eligible(devices), all_mode=True)])
    got = solve_all(problem(devices, [c]))
    assert len(got["optimal"].placements[c.key].results) in (1, 2)
    assert len(got["first-fit"].placements[c.key].results) == 2
