"""A previous plan for the stability level: which devices each claim held in an earlier answer.

The plan is what ``gpupolicy solve -o yaml|json`` printed (its ``claims`` list), or any file of
ResourceClaims with ``status.allocation``. Claims that are not pending now, and devices the inventory
no longer has, are ignored: stability only breaks ties below placement, order, fragmentation and
preferences (see docs/solver.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gpupolicy.policy.errors import Diagnostic, DiagnosticError
from gpupolicy.policy.k8s.load import load_objects
from gpupolicy.policy.yamlsrc import SourceDoc, parse_yaml
from gpupolicy.solver.problem import ClaimKey, DeviceIndex, Problem


def _claim_docs(text: str, filename: str) -> list[SourceDoc]:
    docs = parse_yaml(text, filename)
    out: list[SourceDoc] = []
    for doc in docs:
        claims = doc.data.get("claims") if not doc.kind else None
        if isinstance(claims, list):  # a `gpupolicy solve` document
            out += [
                SourceDoc(item, filename, doc.index, ("claims", i), doc.positions, doc.key_positions)
                for i, item in enumerate(claims)
                if isinstance(item, dict)
            ]
        else:
            out.append(doc)
    return out


def read_previous(problem: Problem, text: str, filename: str) -> dict[ClaimKey, frozenset[DeviceIndex]]:
    """Devices per pending claim in the earlier plan, as indexes into ``problem.devices``."""
    loaded = load_objects(_claim_docs(text, filename), kinds=("ResourceClaim",))
    if loaded.diagnostics:
        raise DiagnosticError(loaded.diagnostics)
    index = {device.key: DeviceIndex(i) for i, device in enumerate(problem.devices)}
    pending = {claim.key for claim in problem.claims}
    plan: dict[ClaimKey, frozenset[DeviceIndex]] = {}
    for item in loaded.claims:
        claim = item.obj
        key = ClaimKey(f"{claim.metadata.namespace_or_default}/{claim.metadata.name}")
        allocation: Any = claim.allocation
        if key not in pending or allocation is None:
            continue
        held = {index.get((r.driver, r.pool, r.device)) for r in allocation.results}
        plan[key] = frozenset(d for d in held if d is not None)
    if not plan and loaded.claims:
        where = loaded.claims[0].doc.locate(())
        raise DiagnosticError([Diagnostic("previous_plan_unused", "no pending claim appears in the plan", where)])
    return plan


def with_previous(problem: Problem, text: str, filename: str) -> Problem:
    return dataclasses.replace(problem, previous={**problem.previous, **read_previous(problem, text, filename)})
