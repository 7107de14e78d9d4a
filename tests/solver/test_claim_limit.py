"""The claim limit: at most 32 devices per claim (``resourceapi.AllocationResultsMaxSize``).

Kubernetes' structured allocator refuses a claim whose requests need more before it searches
(``claim ns/name, request r: adding N devices exceeds the claim limit of 32, with M already accounted
for``), and during the search skips a subrequest that would pass the limit. gpupolicy's compile step,
first-fit, best-fit, the CP-SAT model and the verifier follow it.
"""

from __future__ import annotations

from gpupolicy.solver.firstfit import best_fit, first_fit
from gpupolicy.solver.optimal import solve_optimal
from gpupolicy.solver.problem import (
    CLAIM_RESULTS_MAX,
    Claim,
    ClaimKey,
    DeviceIndex,
    DeviceResult,
    NodeName,
    Request,
    claim_limit_error,
)
from gpupolicy.solver.result import Placement, Solution, SolveParams
from gpupolicy.solver.verify import verify
from tests.solver.builders import alt, gpu, problem
from tests.solver.test_compile import claim_yaml, run

PARAMS = SolveParams(time_limit_s=10, workers=1, seed=0)


def test_limit_is_kubernetes_allocation_results_max_size() -> None:
    assert CLAIM_RESULTS_MAX == 32


def test_one_request_of_33() -> None:
    devices = [gpu("n1", f"g{i}", index=i) for i in range(40)]
    every = tuple(range(40))
    assert claim_limit_error([Request("gpu", (alt(every, 32),))], devices) is None  # type: ignore[arg-type]
    assert claim_limit_error([Request("gpu", (alt(every, 33),))], devices) == (  # type: ignore[arg-type]
        0,
        "request gpu: adding 33 devices exceeds the claim limit of 32, with 0 already accounted for",
    )


def test_two_requests_of_20() -> None:
    devices = [gpu("n1", f"g{i}", index=i) for i in range(40)]
    every = tuple(range(40))
    requests = [Request("a", (alt(every, 20, "a"),)), Request("b", (alt(every, 20, "b"),))]
    assert claim_limit_error(requests, devices) == (  # type: ignore[arg-type]
        1,
        "request b: adding 20 devices exceeds the claim limit of 32, with 20 already accounted for",
    )


def test_first_available_counts_its_smallest_subrequest() -> None:
    devices = [gpu("n1", f"g{i}", index=i) for i in range(40)]
    every = tuple(range(40))
    requests = [
        Request("a", (alt(every, 20, "a"),)),
        Request("b", (alt(every, 20, "b/big"), alt(every, 10, "b/small"))),
    ]
    assert claim_limit_error(requests, devices) is None  # type: ignore[arg-type]


def test_all_mode_counts_the_devices_of_each_node() -> None:
    devices = [gpu("n1", f"g{i}", index=i) for i in range(20)] + [gpu("n2", f"g{i}", index=i) for i in range(33)]
    n1, n2 = tuple(range(20)), tuple(range(20, 53))
    assert claim_limit_error([Request("gpu", (alt(n1, all_mode=True),))], devices) is None  # type: ignore[arg-type]
    assert claim_limit_error([Request("gpu", (alt(n1 + n2, all_mode=True),))], devices) == (  # type: ignore[arg-type]
        0,
        "request gpu: adding 33 devices exceeds the claim limit of 32, with 0 already accounted for",
    )


def _solve_all(p: object) -> dict[str, Solution]:
    out = {"first-fit": first_fit(p), "best-fit": best_fit(p), "optimal": solve_optimal(p, PARAMS)}  # type: ignore[arg-type]
    for name, solution in out.items():
        assert verify(p, solution) == [], name  # type: ignore[arg-type]
    return out


def test_search_skips_a_subrequest_that_would_pass_the_limit() -> None:
    """Statically fine (20 + min(20, 10) = 30), but the first subrequest would make 40 results."""
    devices = [gpu("n1", f"g{i}", index=i) for i in range(40)]
    every = tuple(range(40))
    c = Claim(
        "default",
        "c",
        (Request("a", (alt(every, 20, "a"),)), Request("b", (alt(every, 20, "b/big"), alt(every, 10, "b/small")))),
        (),
    )
    for name, solution in _solve_all(problem(devices, [c])).items():
        placement = solution.placements[ClaimKey("default/c")]
        assert len(placement.results) == 30, name
        assert {r.request for r in placement.results} == {"a", "b/small"}, name


def test_verifier_rejects_more_than_32_results() -> None:
    devices = [gpu("n1", f"g{i}", index=i) for i in range(40)]
    c = Claim("default", "c", (Request("gpu", (alt(tuple(range(40)), 33),)),), ())
    p = problem(devices, [c])
    first = first_fit(p)
    assert first.placements == {}
    forged = Solution(
        strategy="forged",
        status="HEURISTIC",
        placements={
            ClaimKey("default/c"): Placement(
                ClaimKey("default/c"), NodeName("n1"), tuple(DeviceResult("gpu", DeviceIndex(i)) for i in range(33))
            )
        },
    )
    assert any("more than the claim limit of 32" in e for e in verify(p, forged))


def test_compiled_claim_is_refused_with_kubernetes_message() -> None:
    request = """
requests:
- name: gpu
  exactly:
    deviceClassName: gpu
    count: 33
"""
    for strategy in ("first-fit", "best-fit", "optimal"):
        _, solution = run(claim_yaml("big", request), strategy)
        assert "default/big" not in solution.placements, strategy
        [reason] = solution.unplaced["default/big"]  # type: ignore[index]
        assert reason.code == "claim_limit_exceeded", strategy
        assert reason.message == (
            "claim default/big: request gpu: adding 33 devices exceeds the claim limit of 32, "
            "with 0 already accounted for (claims.yaml:9:9)"
        ), strategy


def test_compiled_two_requests_of_20() -> None:
    request = """
requests:
- name: a
  exactly: {deviceClassName: gpu, count: 20}
- name: b
  exactly: {deviceClassName: gpu, count: 20}
"""
    _, solution = run(claim_yaml("two", request), "first-fit")
    [reason] = solution.unplaced["default/two"]  # type: ignore[index]
    assert reason.code == "claim_limit_exceeded"
    assert "request b: adding 20 devices exceeds the claim limit of 32, with 20 already accounted for" in reason.message
