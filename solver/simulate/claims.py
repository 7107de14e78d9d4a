"""Replay DRA claims (our own formats) in arrival order against an inventory.

The arrivals are the problem's gangs in order: a Pod's claims together (all or nothing), a lone
ResourceClaim by itself. Nothing departs and a claim that is not placed when it arrives fails for
good (no retries). Strategies, all the solver's own code:

- ``first-fit``: the Kubernetes allocator (:func:`gpupolicy.solver.firstfit.first_fit`), gang by gang;
- ``best-fit``: the same search, tightest node and partly used GPUs first;
- ``online``: each arrival solved with the optimal model (:func:`gpupolicy.solver.solve.solve`) on its own,
  everything placed before it fixed as existing allocations;
- ``batch``: the optimal model over windows of ``window`` arrivals, earlier windows fixed.

Solved alone, one arrival usually has many placements that are equal for the policy's objective
(any partly used node, any MIG placement of a profile). ``online`` and ``batch`` break those ties
through the model's lowest level, *stability* (devices kept from a previous plan): the previous plan
handed to the model is a guided greedy placement of the window, which takes the devices that block
the fewest other still-free devices of their GPU (a 3g.40gb slice at memory slot 4 keeps the 4g.40gb
placement at slot 0 open), then partly used GPUs, on the fullest node (best-fit). Everything above
stability (placement, ``firstAvailable`` order, the policy's objective and preferences) still wins.

After the replay the verifier (:func:`gpupolicy.solver.verify.verify`) re-checks the final state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from gpupolicy.solver.firstfit import best_fit, first_fit, fullest_nodes, greedy, tightest_devices
from gpupolicy.solver.problem import Claim, ClaimKey, DeviceIndex, DeviceResult, Existing, Problem
from gpupolicy.solver.result import Placement, Solution, SolveParams
from gpupolicy.solver.simulate.gpu_use import GpuCounts, GpuUse
from gpupolicy.solver.solve import solve
from gpupolicy.solver.state import Usage
from gpupolicy.solver.verify import verify

STRATEGIES = ("first-fit", "best-fit", "online", "batch")
Progress = Callable[[str, int, int], None]


@dataclass
class ClaimReplay:
    strategy: str
    trace: str
    arrivals: list[str]  # gang names in arrival order
    claims: int
    placements: dict[ClaimKey, Placement]
    failed: list[str]  # arrivals (gangs) not placed
    reasons: dict[str, str]  # failed arrival -> compile error code of one of its claims, or "not_placed"
    curve: list[float]  # allocation % before the first arrival and after each one
    gpus: GpuCounts
    seconds: float
    decision_ms: list[float] = field(default_factory=list)  # per solve (online: arrival, batch: window)
    violations: list[str] = field(default_factory=list)
    window: int = 0

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "strategy": self.strategy,
            "trace": self.trace,
            "arrivals": len(self.arrivals),
            "claims": self.claims,
            "placed": len(self.placements),
            "failed_pods": self.failed,
            "failed_reasons": self.reasons,
            "gpus": self.gpus.to_json(),
            "allocation": round(self.curve[-1], 4),
            "curve": [round(v, 4) for v in self.curve],
            "seconds": round(self.seconds, 3),
            "violations": self.violations,
        }
        if self.decision_ms:
            ms = np.array(self.decision_ms)
            doc["decision_ms"] = {
                "median": round(float(np.median(ms)), 3),
                "p99": round(float(np.percentile(ms, 99)), 3),
            }
        if self.strategy == "batch":
            doc["window"] = self.window
        return doc


def arrivals(problem: Problem) -> list[tuple[str, list[Claim]]]:
    """Gangs in arrival order (the position of their first claim)."""
    out: dict[str, list[Claim]] = {}
    for claim in problem.claims:
        out.setdefault(claim.gang or claim.key, []).append(claim)
    return list(out.items())


def _greedy(problem: Problem, strategy: str) -> tuple[dict[ClaimKey, Placement], dict[ClaimKey, str]]:
    """The placements, and the code of the error that left a claim unschedulable for now (first-fit)."""
    solution = first_fit(problem) if strategy == "first-fit" else best_fit(problem)
    return solution.placements, {key: reason.code for key, reason in solution.blocked.items()}


class _Blocking:
    """How many other still-free devices of its GPU taking a device would make unallocatable."""

    def __init__(self, problem: Problem) -> None:
        self.siblings: dict[tuple[object, ...], list[DeviceIndex]] = {}
        for d, device in enumerate(problem.devices):
            if device.consumes and not device.multi_allocatable:
                self.siblings.setdefault(device.gpu_key, []).append(DeviceIndex(d))

    def count(self, usage: Usage, d: DeviceIndex) -> int:
        device = usage.problem.devices[d]
        if not device.consumes or device.multi_allocatable or usage.in_use(d) or not usage.counters_fit(d):
            return 0
        free = [e for e in self.siblings.get(device.gpu_key, []) if e != d and usage.counters_fit(e)]
        free = [e for e in free if not usage.in_use(e)]
        probe = [DeviceResult(request="", device=d)]
        usage.add(probe)
        blocked = sum(1 for e in free if not usage.counters_fit(e))
        usage.remove(probe)
        return blocked

    def order(self, usage: Usage, candidates: list[DeviceIndex]) -> list[DeviceIndex]:
        return sorted(tightest_devices(usage, candidates), key=lambda d: self.count(usage, d))


def _guided(problem: Problem, blocking: _Blocking) -> Problem:
    """``problem`` with a guided greedy placement as the previous plan (the stability tie-breaker)."""
    plan = greedy(problem, "guided", blocking.order, fullest_nodes)
    previous = {key: frozenset(r.device for r in p.results) for key, p in plan.placements.items()}
    return replace(problem, previous={**problem.previous, **previous})


def _windows(
    problem: Problem, size: int, params: SolveParams, progress: Progress | None, name: str
) -> tuple[dict[ClaimKey, Placement], list[float]]:
    """Solve ``size`` arrivals at a time with the optimal model, everything placed earlier fixed."""
    gangs = arrivals(problem)
    existing = list(problem.existing)
    placements: dict[ClaimKey, Placement] = {}
    times: list[float] = []
    blocking = _Blocking(problem)
    for start in range(0, len(gangs), size):
        claims = tuple(c for _, members in gangs[start : start + size] for c in members)
        started = time.perf_counter()
        window = _guided(replace(problem, claims=claims, existing=tuple(existing)), blocking)
        solution = solve(window, "optimal", params)
        times.append(1000.0 * (time.perf_counter() - started))
        by_key = {c.key: c for c in claims}
        for key, placement in solution.placements.items():
            placements[key] = placement
            existing.append(Existing(key, by_key[key].namespace, placement.results, placement.node))
        if progress is not None:
            progress(name, min(start + size, len(gangs)), len(gangs))
    return placements, times


def replay_claims(
    problem: Problem,
    strategy: str,
    *,
    trace: str = "",
    window: int = 16,
    params: SolveParams | None = None,
    progress: Progress | None = None,
) -> ClaimReplay:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    params = replace(params or SolveParams(time_limit_s=10.0, workers=1), explain=False)
    started = time.perf_counter()
    blocked: dict[ClaimKey, str] = {}
    times: Sequence[float] = []
    if strategy in ("first-fit", "best-fit"):
        placements, blocked = _greedy(problem, strategy)
    else:
        size = 1 if strategy == "online" else max(1, window)
        placements, times = _windows(problem, size, params, progress, strategy)
    seconds = time.perf_counter() - started
    return _summarise(problem, strategy, trace, placements, seconds, times, window, blocked)


def _summarise(
    problem: Problem,
    strategy: str,
    trace: str,
    placements: dict[ClaimKey, Placement],
    seconds: float,
    times: Sequence[float],
    window: int,
    blocked: Mapping[ClaimKey, str],
) -> ClaimReplay:
    use = GpuUse(problem)
    curve = [use.allocation]
    failed: list[str] = []
    reasons: dict[str, str] = {}
    gangs = arrivals(problem)
    for name, members in gangs:
        placed = [placements[c.key] for c in members if c.key in placements]
        if len(placed) < len(members):
            failed.append(name)
            errors = [c.error[0] for c in members if c.error is not None]
            errors += [blocked[c.key] for c in members if c.key in blocked]
            reasons[name] = errors[0] if errors else "not_placed"
        for placement in placed:
            use.add(placement.results)
        curve.append(use.allocation)
    final = Solution(strategy=strategy, placements=dict(placements), status="HEURISTIC")
    return ClaimReplay(
        strategy=strategy,
        trace=trace,
        arrivals=[name for name, _ in gangs],
        claims=len(problem.claims),
        placements=placements,
        failed=failed,
        reasons=reasons,
        curve=curve,
        gpus=use.counts(),
        seconds=seconds,
        decision_ms=list(times),
        violations=verify(problem, final),
        window=window,
    )
