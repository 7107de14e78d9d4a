"""Requests, alternatives, counts, allocation mode All, node locality and gangs.

Returns the objective terms of the first level: the priority-weighted number of claims placed.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from ortools.sat.python import cp_model

from gpupolicy.solver.model.variables import TakeKey, Variables
from gpupolicy.solver.problem import (
    ANYWHERE,
    CLAIM_RESULTS_MAX,
    AllocationMode,
    Alternative,
    Claim,
    DeviceIndex,
    NodeName,
    usable_from,
)


def build(v: Variables) -> list[cp_model.LinearExprT]:
    terms: list[cp_model.LinearExprT] = []
    for claim in v.claims:
        _claim(v, claim)
        terms.append(claim.priority * v.placed[claim.key])
    _gangs(v)
    _identical_claims(v)
    return terms


def _identical_claims(v: Variables) -> None:
    """Symmetry breaking: of identical claims (same compiled requests, namespace, priority, no pod
    partner), an earlier one is placed whenever a later one is."""
    if v.problem.previous:
        return
    gangs = v.problem.gangs
    groups: dict[tuple[object, ...], list[Claim]] = defaultdict(list)
    for claim in v.claims:
        if len(gangs[claim.gang or claim.key]) != 1 or claim.moving:  # a replacement's current place matters
            continue
        shape = tuple((r.name, tuple(id(a) for a in r.alternatives)) for r in claim.requests)
        groups[(shape, claim.constraints, claim.namespace, claim.priority)].append(claim)
    for group in groups.values():
        for earlier, later in itertools.pairwise(group):
            v.model.add_implication(v.placed[later.key], v.placed[earlier.key])


def _claim(v: Variables, claim: Claim) -> None:
    m, key = v.model, claim.key
    nodes = v.nodes_of[key]
    m.add(sum(v.node[(key, n)] for n in nodes) == v.placed[key])
    per_device: dict[DeviceIndex, list[TakeKey]] = defaultdict(list)
    for request in claim.requests:
        m.add(sum(v.alt[(key, a.name)] for a in request.alternatives) == v.placed[key])
        for alternative in request.alternatives:
            takes = _takes(v, claim, alternative)
            chosen = v.alt[(key, alternative.name)]
            for t in takes:
                per_device[t[2]].append(t)
            if alternative.mode == AllocationMode.ALL:
                for t in takes:
                    m.add_implication(v.take[t], chosen)
                    _locality(v, claim, t, nodes)
                _all_mode(v, claim, alternative, takes, nodes)
            else:
                # the count ties takes to the alternative; locality is one linear row per node
                m.add(sum(v.take[t] for t in takes) == alternative.count * chosen)
                _node_rows(v, claim, alternative.count, takes, nodes)
    for d, takes in per_device.items():
        if len(takes) > 1 and not v.problem.devices[d].multi_allocatable:
            m.add_at_most_one(v.take[t] for t in takes)
    every = [v.take[t] for takes in per_device.values() for t in takes]
    if len(every) > CLAIM_RESULTS_MAX:  # status.allocation.devices.results holds at most 32
        m.add(sum(every) <= CLAIM_RESULTS_MAX)


def _takes(v: Variables, claim: Claim, alternative: Alternative) -> list[TakeKey]:
    keys = [(claim.key, alternative.name, d) for d in alternative.eligible]
    return [t for t in keys if t in v.take]


def _node_rows(v: Variables, claim: Claim, count: int, takes: list[TakeKey], nodes: list[NodeName]) -> None:
    """Devices bound to exactly one node: at most ``count`` of them, and only on the chosen node."""
    per_node: dict[NodeName, list[TakeKey]] = defaultdict(list)
    for t in takes:
        bound = v.problem.devices[t[2]].nodes
        if bound is not None and len(bound) == 1:
            per_node[next(iter(bound))].append(t)
        else:
            _locality(v, claim, t, nodes)
    for n, group in sorted(per_node.items()):
        here = v.node.get((claim.key, n))
        if here is None:
            for t in group:
                v.model.add(v.take[t] == 0)
            continue
        v.model.add(sum(v.take[t] for t in group) <= min(count, len(group)) * here)


def _locality(v: Variables, claim: Claim, t: TakeKey, nodes: list[NodeName]) -> None:
    device = v.problem.devices[t[2]]
    if device.nodes is None:
        return
    allowed = [v.node[(claim.key, n)] for n in nodes if n in device.nodes]
    if not allowed:
        v.model.add(v.take[t] == 0)
    elif len(allowed) == 1:
        v.model.add_implication(v.take[t], allowed[0])
    else:
        v.model.add(v.take[t] <= sum(allowed))


def _all_mode(
    v: Variables, claim: Claim, alternative: Alternative, takes: list[TakeKey], nodes: list[NodeName]
) -> None:
    """Every matching device usable from the chosen node, and at least one."""
    m, key = v.model, claim.key
    chosen = v.alt[(key, alternative.name)]
    for n in nodes:
        on_node = [t for t in takes if usable_from(v.problem.devices[t[2]], n)]
        here = v.node[(key, n)]
        if not on_node:
            m.add_bool_or([chosen.Not(), here.Not()])
            continue
        for t in on_node:
            m.add_bool_or([chosen.Not(), here.Not(), v.take[t]])


def _gangs(v: Variables) -> None:
    members: dict[str, list[Claim]] = defaultdict(list)
    for claim in v.claims:
        members[claim.gang or claim.key].append(claim)
    for group in members.values():
        first = v.placed[group[0].key]
        for other in group[1:]:
            v.model.add(v.placed[other.key] == first)
        _same_node(v, [c for c in group if v.nodes_of[c.key] != [ANYWHERE]])


def _same_node(v: Variables, group: list[Claim]) -> None:
    """The claims of one pod are allocated for the same node."""
    if len(group) < 2:
        return
    nodes = sorted({n for c in group for n in v.nodes_of[c.key]})
    for n in nodes:
        present = [v.node[(c.key, n)] for c in group if (c.key, n) in v.node]
        if len(present) < len(group):
            for var in present:
                v.model.add(var == 0)
            continue
        for var in present[1:]:
            v.model.add(var == present[0])
