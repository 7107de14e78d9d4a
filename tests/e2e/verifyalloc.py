"""Run our independent verifier (``gpupolicy.solver.verify``) on allocations somebody else made: the real
kube-scheduler.

The allocated claims, exactly as the API server returns them, go through the solver's own input path (as existing
allocations), so ``shareID`` and ``consumedCapacity`` are read the way ``gpupolicy solve`` reads a live cluster;
those allocations then become the solution to check, against the same claims given as pending."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import yaml

from gpupolicy.solver.inputs import read_inputs
from gpupolicy.solver.problem import NodeName, Problem
from gpupolicy.solver.result import Placement, Solution
from gpupolicy.solver.verify import verify
from tests.e2e.kube import Obj


def pending_copy(claim: Obj) -> Obj:
    bare = copy.deepcopy(claim)
    bare.pop("status", None)
    bare["metadata"] = {"name": claim["metadata"]["name"], "namespace": claim["metadata"]["namespace"]}
    return bare


def _problem(inventory: Path, objs: list[Obj], policy: Path | None, *, as_pending: bool) -> Problem:
    text = (yaml.safe_dump_all(objs), "<pending>" if as_pending else "<allocated>")
    inputs = read_inputs(
        [(inventory.read_text(), str(inventory)), *([] if as_pending else [text])],
        [text] if as_pending else [],
        (policy.read_text(), str(policy)) if policy is not None else None,
    )
    return inputs.compile().problem


def verify_scheduler(inventory: Path, live: list[Obj], policy: Path | None = None) -> list[str]:
    """Violations our verifier finds in the allocations of ``live`` claims (empty: valid). ``policy`` adds its
    rules (admission, quotas) to the check; without it, plain Kubernetes semantics apply.

    Two reads over the same inventory (so device indexes agree): the allocations as existing ones, then the
    same claims without status as pending; the first read's allocations are checked as the answer to the
    second read's problem."""
    allocated = [c for c in live if (c.get("status") or {}).get("allocation")]
    existing = _problem(inventory, allocated, policy, as_pending=False).existing
    problem = _problem(inventory, [pending_copy(c) for c in live], policy, as_pending=True)
    solution = Solution("kube-scheduler")
    for item in existing:
        solution.placements[item.claim] = Placement(item.claim, item.node or NodeName(""), item.results)
    if len(solution.placements) != len(allocated) or any(not p.results for p in solution.placements.values()):
        return [f"only {len(solution.placements)} of {len(allocated)} allocations refer to known devices"]
    return verify(dataclasses.replace(problem, existing=()), solution)
