"""Builders for preemption and defragmentation problems (tests only): allocations that may be given up, and
weights derived from levels the way the compiler derives them from priority tiers."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from gpupolicy.solver.problem import (
    Claim,
    ClaimKey,
    CounterSet,
    Device,
    DeviceIndex,
    DeviceResult,
    Disruption,
    Eviction,
    Existing,
    Problem,
)
from gpupolicy.solver.result import Solution, SolveParams
from gpupolicy.solver.solve import solve
from gpupolicy.solver.verify import verify
from tests.solver.builders import problem

PARAMS = SolveParams(time_limit_s=20, workers=1, seed=0)
PREEMPT = Disruption(preempt=True)


def held(
    name: str,
    devices: Sequence[int],
    *,
    level: int = 0,
    ns: str = "low",
    pod: str | None = None,
    budgets: tuple[str, ...] = (),
    movable: bool = False,
    consumed: dict[str, int] | None = None,
) -> Existing:
    """An allocation of ``devices`` whose pod (default: one named after the claim) may be evicted."""
    pod_name = f"{ns}/{pod or name}"
    results = tuple(
        DeviceResult("gpu", DeviceIndex(d), share_id=f"s-{name}-{d}" if consumed else None, consumed=consumed or {})
        for d in devices
    )
    eviction = Eviction(f"pod:{pod_name}", (pod_name,), budgets, movable)
    return Existing(ClaimKey(f"{ns}/{name}"), ns, results, level=level, eviction=eviction)


def fixed(name: str, devices: Sequence[int], ns: str = "fixed") -> Existing:
    results = tuple(DeviceResult("gpu", DeviceIndex(d)) for d in devices)
    return Existing(ClaimKey(f"{ns}/{name}"), ns, results)


def weighed(claims: Sequence[Claim], existing: Sequence[Existing]) -> tuple[list[Claim], list[Existing]]:
    """Weights from levels: each level outweighs everything below it together (pending and allocated)."""
    levels = [c.level for c in claims if not c.moving] + [e.level for e in existing if e.eviction is not None]
    weight: dict[int, int] = {}
    below = 0
    for level in sorted(set(levels)):
        weight[level] = below + 1
        below += weight[level] * levels.count(level)
    out_claims = [dataclasses.replace(c, priority=weight.get(c.level, 1)) for c in claims]
    out_existing = [dataclasses.replace(e, weight=weight.get(e.level, 1)) if e.eviction else e for e in existing]
    return out_claims, out_existing


def preemption_problem(
    devices: list[Device],
    claims: list[Claim],
    existing: list[Existing],
    counter_sets: Sequence[CounterSet] = (),
    *,
    disruption: Disruption = PREEMPT,
    budgets: dict[str, int] | None = None,
) -> Problem:
    claims, existing = weighed(claims, existing)
    return problem(
        devices,
        claims,
        list(counter_sets),
        existing=tuple(existing),
        disruption=disruption,
        budgets=budgets or {},
    )


def solved(p: Problem) -> Solution:
    solution = solve(p, "optimal", PARAMS)
    assert verify(p, solution) == []
    assert solution.proven_optimal, solution.status
    return solution


def preempted(solution: Solution) -> dict[str, tuple[str, ...]]:
    return {k: v.for_ for k, v in sorted(solution.preempted.items())}
