"""Quota usage of results, shared by the model, the baselines and explanations."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from gpupolicy.solver.problem import ClaimKey, DeviceResult, Problem, Quota


def usage_of(problem: Problem, quota: Quota, results: Iterable[DeviceResult]) -> int:
    """What one claim with these results counts against ``quota``."""
    if quota.resource == "claims":
        return 1
    return sum(quota.amount(r, problem.devices[r.device]) for r in results)


def existing_usage(problem: Problem, quota: Quota, skip: Collection[ClaimKey] = ()) -> int:
    """What the existing allocations count against ``quota``, but those in ``skip``."""
    return sum(
        usage_of(problem, quota, e.results)
        for e in problem.existing
        if e.namespace == quota.namespace and e.claim not in skip
    )
