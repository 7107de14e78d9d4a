"""Explanations for unplaced claims: stable codes, the user's names, the blocking claims."""

from __future__ import annotations

from gpupolicy.solver.problem import Alternative, ClaimKey, Constraint, Exclusion, Quota
from gpupolicy.solver.result import SolveParams
from gpupolicy.solver.solve import solve
from gpupolicy.solver.verify import verify
from tests.solver.builders import DRIVER, alt, claim, eligible, gpu, mig_gpu, problem

PARAMS = SolveParams(time_limit_s=10, workers=1, seed=0, explain_time_limit_s=5)


def reasons(p, strategy: str = "optimal") -> dict[str, list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    solution = solve(p, strategy, PARAMS)
    assert verify(p, solution) == []
    return {k: [(r.code, r.message) for r in v] for k, v in solution.unplaced.items()}


def test_first_fit_mig_geometry_is_spelled_out() -> None:
    devices, cs = mig_gpu("node-a", 0)
    c3 = claim("mig-3g", [alt(eligible(devices, profile="3g.40gb"))])
    c4 = claim("mig-4g", [alt(eligible(devices, profile="4g.40gb"))])
    got = reasons(problem(devices, [c3, c4], [cs]), "first-fit")
    [(code, message)] = got["default/mig-4g"]
    assert code == "counters_exhausted"
    assert "4g.40gb fits only at slot 0, taken on every eligible GPU" in message
    assert "default/mig-3g" in message


def test_capacity_exhausted_names_the_blocking_claims() -> None:
    devices = [gpu("node-a", "gpu-0")]
    first = claim("first", [alt(eligible(devices))], priority=10)
    second = claim("second", [alt(eligible(devices))])
    got = reasons(problem(devices, [first, second]))
    assert got == {
        "default/second": [("capacity_exhausted", "claim default/second: eligible devices are taken by default/first")]
    }


def test_selector_excluding_everything_names_the_selector() -> None:
    devices = [gpu("node-a", "gpu-0")]
    excluded = Alternative(
        "gpu",
        "big-gpu",
        (),
        exclusions=(Exclusion('class "big-gpu" selector #0', "classes.yaml:7:11", 1),),
        candidates=1,
    )
    got = reasons(problem(devices, [claim("c", [excluded])]))
    [(code, message)] = got["default/c"]
    assert code == "selector_excludes_all"
    assert 'class "big-gpu" selector #0 at classes.yaml:7:11 excludes 1' in message


def test_quota_and_constraint_and_locality() -> None:
    devices = [gpu(f"node-{n}", f"gpu-{i}", index=i, numa=0) for n in "ab" for i in range(2)]
    q = reasons(
        problem(
            devices,
            [claim("q", [alt(eligible(devices), count=2)], ns="t")],
            quotas=(Quota("t", "devices", 1, "policy.yaml:3:5"),),
        )
    )
    assert q["t/q"][0][0] == "quota_exceeded" and "policy.yaml:3:5" in q["t/q"][0][1]
    distinct = claim("d", [alt(eligible(devices), count=2)], constraints=(Constraint(f"{DRIVER}/numa", distinct=True),))
    assert reasons(problem(devices, [distinct]))["default/d"][0][0] == "constraint_unsatisfiable"
    three = claim("three", [alt(eligible(devices), count=3)])
    assert reasons(problem(devices, [three]))["default/three"][0][0] == "no_single_node"


def test_error_claims_fail_with_their_error() -> None:
    devices = [gpu("node-a", "gpu-0")]
    broken = claim("broken", [alt(eligible(devices))])
    broken = broken.__class__(
        **{**broken.__dict__, "error": ("cel_runtime_error", "selector #0: CEL runtime error: no such key: x")}
    )
    got = reasons(problem(devices, [broken]))
    assert got[ClaimKey("default/broken")][0][0] == "cel_runtime_error"


def test_admission_refusal_is_not_admitted() -> None:
    devices = [gpu("node-a", "gpu-0")]
    refused = Alternative(
        "gpu",
        "gpu",
        (),
        exclusions=(Exclusion('admission rule "interns-no-h100"', "policy.yaml:40:5", 1),),
        candidates=1,
    )
    got = reasons(problem(devices, [claim("c", [refused])]))
    [(code, message)] = got["default/c"]
    assert code == "not_admitted"
    assert 'admission rule "interns-no-h100" at policy.yaml:40:5 excludes 1' in message
