"""The CP-SAT variables, created once, in containers keyed by readable tuples.

- ``placed[claim]``: the claim gets all its devices;
- ``node[claim, node]``: the node the claim's devices are usable from (one when placed);
- ``alt[claim, alternative]``: which alternative (``req`` or ``req/sub``) serves each request;
- ``take[claim, alternative, device]``: the alternative takes the device; created only where the
  device is eligible, usable from one of the claim's nodes and free enough after existing allocations;
- ``used[device]``: some pending claim, or an allocation a solve may give up and keeps, holds the device
  (non-admin), which consumes its counters;
- ``kept[unit]`` / ``moved[unit]``: a victim unit (allocations a solve may preempt or move, see
  :mod:`gpupolicy.solver.victims`) keeps its devices / is placed again elsewhere (neither: preempted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from gpupolicy.solver.problem import (
    AllocationMode,
    Alternative,
    Claim,
    ClaimKey,
    DeviceIndex,
    DeviceResult,
    NodeName,
    Problem,
    node_options,
)
from gpupolicy.solver.state import Usage
from gpupolicy.solver.victims import VictimUnit

TakeKey = tuple[ClaimKey, str, DeviceIndex]


@dataclass
class Variables:
    model: cp_model.CpModel
    problem: Problem
    usage: Usage  # existing allocations
    claims: list[Claim]
    placed: dict[ClaimKey, cp_model.IntVar] = field(default_factory=dict)
    node: dict[tuple[ClaimKey, NodeName], cp_model.IntVar] = field(default_factory=dict)
    alt: dict[tuple[ClaimKey, str], cp_model.IntVar] = field(default_factory=dict)
    take: dict[TakeKey, cp_model.IntVar] = field(default_factory=dict)
    used: dict[DeviceIndex, cp_model.IntVar] = field(default_factory=dict)
    consumed: dict[TakeKey, dict[str, int]] = field(default_factory=dict)
    by_device: dict[DeviceIndex, list[TakeKey]] = field(default_factory=dict)
    by_claim: dict[ClaimKey, list[TakeKey]] = field(default_factory=dict)
    nodes_of: dict[ClaimKey, list[NodeName]] = field(default_factory=dict)
    admin: set[TakeKey] = field(default_factory=set)  # admin access: needs no free device, blocks none
    blocked: set[TakeKey] = field(default_factory=set)  # All mode: must be taken but is in use
    units: tuple[VictimUnit, ...] = ()
    kept: dict[str, cp_model.IntVar] = field(default_factory=dict)
    moved: dict[str, cp_model.IntVar] = field(default_factory=dict)
    victim_holds: dict[DeviceIndex, list[tuple[str, DeviceResult]]] = field(default_factory=dict)  # non-admin


def available(usage: Usage, alternative: Alternative, d: DeviceIndex) -> dict[str, int] | None:
    """Pre-filter: what the alternative would consume from ``d`` given only existing allocations."""
    return usage.consumption(d, alternative)


def create(
    model: cp_model.CpModel,
    problem: Problem,
    usage: Usage,
    claims: list[Claim],
    units: tuple[VictimUnit, ...] = (),
) -> Variables:
    """``usage``: the fixed allocations (not ``units``, whose claims the model may give up)."""
    v = Variables(model, problem, usage, claims)
    for claim in claims:
        key = claim.key
        v.placed[key] = model.new_bool_var(f"placed[{key}]")
        candidates = {d for r in claim.requests for a in r.alternatives for d in a.eligible}
        v.nodes_of[key] = list(node_options(problem, candidates))
        for n in v.nodes_of[key]:
            v.node[(key, n)] = model.new_bool_var(f"node[{key},{n or '*'}]")
        for request in claim.requests:
            for alternative in request.alternatives:
                v.alt[(key, alternative.name)] = model.new_bool_var(f"alt[{key},{alternative.name}]")
                _create_takes(v, claim, alternative)
    v.units = units
    for unit in units:
        v.kept[unit.name] = model.new_bool_var(f"kept[{unit.name}]")
        if unit.movable:
            v.moved[unit.name] = model.new_bool_var(f"moved[{unit.name}]")
        for existing in unit.claims:
            for result in existing.results:
                if not result.admin_access:
                    v.victim_holds.setdefault(result.device, []).append((unit.name, result))
    for d in sorted(set(v.by_device) | set(v.victim_holds)):
        if d in v.victim_holds or any(t not in v.admin for t in v.by_device[d]):
            v.used[d] = model.new_bool_var(f"used[{problem.devices[d].label}]")
    return v


def _create_takes(v: Variables, claim: Claim, alternative: Alternative) -> None:
    for d in alternative.eligible:
        consumed = available(v.usage, alternative, d)
        if consumed is None and alternative.mode != AllocationMode.ALL:
            continue
        key = (claim.key, alternative.name, d)
        v.take[key] = v.model.new_bool_var(f"take[{claim.key},{alternative.name},{v.problem.devices[d].name}]")
        v.consumed[key] = consumed or {}
        if consumed is None:
            v.blocked.add(key)
            v.model.add(v.take[key] == 0)
        if alternative.admin_access:
            v.admin.add(key)
        v.by_device.setdefault(d, []).append(key)
        v.by_claim.setdefault(claim.key, []).append(key)
