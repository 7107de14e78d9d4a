"""Stand-ins for the solver's preemption model and ``build_evictions`` while they are not on main yet: small, greedy,
for whole-device claims of one request (what the controller's preemption tests use). Each is used only when the
real one is missing (:func:`install`), so the same tests run against the real model once it lands.

The greedy model: the real solve places what fits as it is; each claim it leaves unplaced (arrival order) may take,
on one node, free devices plus those of the cheapest candidates (lowest level, then weight, then device order):
preempted when strictly lower than the claim and ``disruption.preempt``; moved when movable, ``disruption.defragment``,
moves are left, and its moving claim finds a free device elsewhere. Every budget of a victim must allow one more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest

import gpupolicy.solver.inputs as inputs_module
from gpupolicy.plugin.controller import placer
from gpupolicy.policy.k8s.claim import ResourceClaim
from gpupolicy.solver.evictions import MOVABLE, BudgetInfo, PodInfo
from gpupolicy.solver.problem import ClaimKey, DeviceIndex, DeviceResult, Eviction, Existing, NodeName, Problem
from gpupolicy.solver.result import Moved, Placement, Preempted, Solution, SolveParams
from gpupolicy.solver.solve import solve as real_solve

REPO = Path(__file__).resolve().parents[3]


def real_model() -> bool:
    return (REPO / "solver" / "model" / "preempt.py").exists()


def real_evictions() -> bool:
    try:
        inputs_module.build_evictions([], [], [])
    except NotImplementedError:
        return False
    return True


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    if not real_evictions():
        monkeypatch.setattr(inputs_module, "build_evictions", build_evictions)
    if not real_model():
        monkeypatch.setattr(placer, "solve", solve)


def _selects(budget: BudgetInfo, pod: PodInfo) -> bool:
    return budget.namespace == pod.namespace and all(pod.labels.get(k) == v for k, v in budget.match_labels.items())


def build_evictions(
    allocated: Sequence[ResourceClaim], pods: Sequence[PodInfo], budgets: Sequence[BudgetInfo]
) -> tuple[dict[ClaimKey, Eviction], dict[str, int]]:
    by_uid = {p.uid: p for p in pods}
    out: dict[ClaimKey, Eviction] = {}
    for claim in allocated:
        reserved = (claim.status.reserved_for if claim.status else None) or []
        users = [by_uid.get(r.uid) for r in reserved]
        if not users or any(u is None or not u.node or u.deleting for u in users):
            continue
        names = tuple(sorted(u.key for u in users if u is not None))
        ours = [b.key for b in budgets if any(_selects(b, u) for u in users if u is not None)]
        movable = all(u is not None and u.annotations.get(MOVABLE) == "true" and u.controlled for u in users)
        key = ClaimKey(f"{claim.metadata.namespace_or_default}/{claim.metadata.name}")
        out[key] = Eviction("pods:" + ",".join(names), names, tuple(sorted(ours)), movable)
    return out, {b.key: b.allowed for b in budgets}


def solve(problem: Problem, strategy: str = "optimal", params: SolveParams | None = None) -> Solution:
    movers = {c.key: c for c in problem.claims if c.moving}
    plain = dataclasses.replace(problem, claims=tuple(c for c in problem.claims if not c.moving))
    solution = real_solve(plain, strategy, params)
    used = {r.device: e.claim for e in problem.existing for r in e.results}
    used |= {r.device: k for k, p in solution.placements.items() for r in p.results}
    budgets = dict(problem.budgets)
    moves_left = problem.disruption.max_moves if problem.disruption.max_moves is not None else 1 << 30
    by_claim = {e.claim: e for e in problem.existing}
    for claim in problem.claims:
        if claim.moving or claim.key in solution.placements or not problem.disruption.any:
            continue
        alt = claim.requests[0].alternatives[0]
        best: tuple[tuple[int, ...], NodeName, list[DeviceIndex], list[Existing]] | None = None
        for node in problem.nodes:
            here = [d for d in alt.eligible if problem.devices[d].node_name == node]
            free = [d for d in here if d not in used]
            need = alt.count - len(free)
            holders = dict.fromkeys(used[d] for d in here if d in used and used[d] in by_claim)
            takers = sorted((by_claim[k] for k in holders), key=lambda e: (e.level, e.weight))
            chosen: list[Existing] = []
            for victim in takers:
                if need <= 0:
                    break
                if _may_take(
                    problem,
                    claim.level,
                    victim,
                    budgets,
                    moves_left - sum(1 for c in chosen if _moves(c, problem, claim.level)),
                ):
                    chosen.append(victim)
                    need -= sum(1 for r in victim.results if r.device in here)
            if need > 0 or not chosen:
                continue
            cost = tuple(sorted((v.level, v.weight) for v in chosen))
            if best is None or cost < best[0]:
                devs = free + [r.device for v in chosen for r in v.results if r.device in here]
                best = (cost, node, devs[: alt.count], chosen)
        if best is None:
            continue
        _, node, devs, chosen = best
        solution.placements[claim.key] = Placement(claim.key, node, tuple(DeviceResult(alt.name, d) for d in devs))
        solution.unplaced.pop(claim.key, None)
        for d in devs:
            used[d] = claim.key
        for victim in chosen:
            for b in victim.eviction.budgets if victim.eviction else ():
                budgets[b] = budgets.get(b, 0) - 1
            assert victim.eviction is not None
            if _moves(victim, problem, claim.level):
                moves_left -= 1
                mover = movers[victim.claim]
                malt = mover.requests[0].alternatives[0]
                spot = next(d for d in malt.eligible if d not in used)
                used[spot] = victim.claim
                placement = Placement(
                    victim.claim, NodeName(problem.devices[spot].node_name or ""), (DeviceResult(malt.name, spot),)
                )
                solution.placements[victim.claim] = placement
                solution.moved[victim.claim] = Moved(
                    victim.claim, victim.eviction.unit, victim.eviction.pods, victim.results, (claim.key,), "stand-in"
                )
            else:
                solution.preempted[victim.claim] = Preempted(
                    victim.claim, victim.level, victim.eviction.unit, victim.eviction.pods, (claim.key,), "stand-in"
                )
    return solution


def _moves(victim: Existing, problem: Problem, level: int) -> bool:
    """Moved rather than preempted: not strictly lower (or preemption off), and movable."""
    return not (problem.disruption.preempt and victim.level < level)


def _may_take(problem: Problem, level: int, victim: Existing, budgets: dict[str, int], moves_left: int) -> bool:
    eviction = victim.eviction
    if eviction is None or any(budgets.get(b, 0) <= 0 for b in eviction.budgets):
        return False
    if problem.disruption.preempt and victim.level < level:
        return True
    if not (problem.disruption.defragment and eviction.movable and moves_left > 0):
        return False
    mover = next((c for c in problem.claims if c.moving and c.key == victim.claim), None)
    return mover is not None
