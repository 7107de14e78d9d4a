"""Rebalancing proposals: would moving claims that have not started yet improve the packing? Dry-run only.

*Movable* claims are the ones this controller allocated (``gpupolicy.dev/allocated-by``) whose consumers have not
started: every pod in ``reservedFor`` (if any) is still ``Pending``. They are solved again as pending claims (each
pod's claims one gang) against every other allocation, fixed. The current and proposed placements are summarised
the way ``gpupolicy solve`` does (idle, partly used, fully used GPUs, fragmentation). A plan is proposed when the
solver places every movable claim and frees at least ``margin`` more whole GPUs. Nothing is ever written: applying
a plan means deleting and recreating the pods concerned, which is for a person (or a later tool) to decide.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gpupolicy.plugin.controller.placer import Settings, read
from gpupolicy.plugin.controller.snapshot import ClaimRef, Snapshot, allocation, ours
from gpupolicy.plugin.kube import Obj
from gpupolicy.solver.output import summary_json
from gpupolicy.solver.problem import ClaimKey, DeviceIndex, DeviceResult, NodeName, Problem
from gpupolicy.solver.report import summarize
from gpupolicy.solver.result import Placement, Solution
from gpupolicy.solver.solve import solve


@dataclass
class Proposal:
    movable: int
    current: dict[str, Any] = field(default_factory=dict)
    proposed: dict[str, Any] = field(default_factory=dict)
    gpus_freed: int = 0
    moves: list[dict[str, Any]] = field(default_factory=list)
    worth_it: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "movableClaims": self.movable,
            "current": self.current,
            "proposed": self.proposed,
            "gpusFreed": self.gpus_freed,
            "proposal": self.worth_it,
            "moves": self.moves,
            "applied": False,
        }


def movable(snapshot: Snapshot, pods: list[Obj]) -> list[ClaimRef]:
    phase = {(p["metadata"]["namespace"], p["metadata"]["uid"]): (p.get("status") or {}).get("phase") for p in pods}
    out = []
    for claim_ref, claim in sorted(snapshot.claims.items()):
        if allocation(claim) is None or not ours(claim):
            continue
        consumers = (claim.get("status") or {}).get("reservedFor") or []
        if all(phase.get((claim_ref[0], c.get("uid")), "Pending") == "Pending" for c in consumers):
            out.append(claim_ref)
    return out


def _gangs(claims: list[ClaimRef], snapshot: Snapshot) -> dict[ClaimRef, str]:
    out = {}
    for claim_ref in claims:
        consumers = (snapshot.claims[claim_ref].get("status") or {}).get("reservedFor") or []
        if consumers:
            out[claim_ref] = f"{claim_ref[0]}/{consumers[0].get('name')}"
    return out


def propose(snapshot: Snapshot, pods: list[Obj], settings: Settings, margin: int = 1) -> Proposal:
    claims = movable(snapshot, pods)
    out = Proposal(len(claims))
    if not claims:
        return out
    unallocated = {c: {**obj, "status": {}} if c in claims else obj for c, obj in snapshot.claims.items()}
    pending_view = dataclasses.replace(snapshot, claims=unallocated)
    inputs = read(pending_view, claims, _gangs(claims, snapshot), settings)
    compiled = inputs.compile()
    current = _current(compiled.problem, snapshot, claims)
    previous = {k: frozenset(r.device for r in p.results) for k, p in current.placements.items()}
    problem = dataclasses.replace(compiled.problem, previous=previous)  # ties broken towards staying put
    proposed = solve(problem, settings.strategy, dataclasses.replace(settings.params, explain=False))
    now, then = summarize(problem, current), summarize(problem, proposed)
    out.current, out.proposed = summary_json(now), summary_json(then)
    out.gpus_freed = then.idle - now.idle
    out.worth_it = len(proposed.placements) == len(claims) and out.gpus_freed >= margin
    if out.worth_it:
        for key, placement in sorted(proposed.placements.items()):
            before = sorted(f"{p}/{d}" for _, p, d in _held(current, key, problem))
            after = sorted(
                f"{problem.devices[r.device].pool}/{problem.devices[r.device].name}" for r in placement.results
            )
            if before != after:
                out.moves.append({"claim": key, "from": before, "to": after})
    return out


def _held(solution: Solution, key: Any, problem: Problem) -> list[tuple[str, str, str]]:
    placement = solution.placements.get(key)
    if placement is None:
        return []
    return [(problem.devices[r.device].driver, problem.devices[r.device].pool, problem.devices[r.device].name)
            for r in placement.results]  # fmt: skip


def _current(problem: Problem, snapshot: Snapshot, claims: list[ClaimRef]) -> Solution:
    """The movable claims where they are now, as a solution of ``problem`` (device indexes looked up by name)."""
    index = {(d.driver, d.pool, d.name): i for i, d in enumerate(problem.devices)}
    by_key = {c.key: c for c in problem.claims}
    solution = Solution("current", status="CURRENT")
    for claim_ref in claims:
        key = ClaimKey(f"{claim_ref[0]}/{claim_ref[1]}")
        alloc = allocation(snapshot.claims[claim_ref]) or {}
        results = []
        for r in (alloc.get("devices") or {}).get("results") or []:
            d = index.get((r["driver"], r["pool"], r["device"]))
            if d is not None:
                results.append(DeviceResult(r["request"], DeviceIndex(d), bool(r.get("adminAccess")), r.get("shareID")))
        node = problem.devices[results[0].device].node_name if results else None
        if key in by_key and results:
            solution.placements[key] = Placement(key, NodeName(node or ""), tuple(results))
    return solution
