"""Quota usage of results, shared by the model and the baselines."""

from __future__ import annotations

from solver.problem import DeviceResult, Problem, Quota


def existing_usage(problem: Problem, quota: Quota) -> int:
    total = 0
    for existing in problem.existing:
        if existing.namespace != quota.namespace:
            continue
        total += 1 if quota.resource == "claims" else sum(amount(problem, quota.resource, r) for r in existing.results)
    return total


def amount(problem: Problem, resource: str, result: DeviceResult) -> int:
    if resource == "devices":
        return 1
    if result.consumed:
        return result.consumed.get(resource, 0)
    capacity = problem.devices[result.device].capacity.get(resource)
    return capacity.value if capacity else 0
