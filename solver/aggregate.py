"""The scale path: identical claims and identical devices aggregated into counts.

When every pending claim is *simple* (one request, one alternative, ``ExactCount``, no constraints,
capacity, admin access or gang partner) and every device it may use is an exclusive, node-bound device
without shared counters, which GPU of a node a claim gets does not matter: only how many claims of each
kind each node takes. Then

- claims with the same eligible devices, count and priority form a *class* ``k`` (multiplicity ``|k|``);
- devices of one node with the same set of eligible classes form a *group* ``g`` (``free_g`` of them free);
- ``n[k, node]`` (integer) claims of class ``k`` go to ``node`` and take ``x[k, g]`` devices of its groups:
  ``sum_g x[k, g] = count_k * n[k, node]``, ``sum_k x[k, g] <= free_g``, ``sum_node n[k, node] <= |k|``.

This is exact: any integer solution expands into concrete devices (claims of a class are placed in
arrival order, devices in Kubernetes order). The objective is the same lexicographic one as the full
model. Identical empty nodes are ordered by load (symmetry breaking), and the first-fit answer is the
solution hint. 1,000 nodes × 8 GPUs with thousands of claims is a few thousand integer variables.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from gpupolicy.solver.problem import (
    AllocationMode,
    Claim,
    ClaimKey,
    DeviceIndex,
    DeviceResult,
    NodeName,
    Objective,
    Problem,
)
from gpupolicy.solver.result import Placement, Solution, SolveParams
from gpupolicy.solver.state import Usage

ClassKey = tuple[frozenset[DeviceIndex], int, int]  # eligible devices, count, priority
GroupKey = tuple[NodeName, frozenset[int]]  # node, eligible class ids


def applicable(problem: Problem) -> bool:
    """Whether every claim and every device it may use is simple enough to aggregate."""
    if problem.quotas or problem.preferences or problem.previous:
        return False
    gangs = problem.gangs
    for claim in problem.claims:
        if claim.error is not None:
            continue
        if claim.constraints or len(claim.requests) != 1 or len(claim.requests[0].alternatives) != 1:
            return False
        if len(gangs[claim.gang or claim.key]) != 1:
            return False
        a = claim.requests[0].alternatives[0]
        if a.mode != AllocationMode.EXACT_COUNT or a.admin_access or a.capacity or a.scores:
            return False
    seen: dict[int, tuple[DeviceIndex, ...]] = {}
    for c in problem.claims:
        for r in c.requests:
            for a in r.alternatives:
                seen.setdefault(id(a.eligible), a.eligible)
    for d in {d for eligible in seen.values() for d in eligible}:
        device = problem.devices[d]
        if device.multi_allocatable or device.consumes or device.nodes is None or len(device.nodes) != 1:
            return False
    return True


@dataclass
class _Model:
    model: cp_model.CpModel
    classes: list[ClassKey]
    members: dict[int, list[Claim]]
    groups: dict[GroupKey, list[DeviceIndex]]  # free devices, in Kubernetes order
    count: dict[tuple[int, NodeName], cp_model.IntVar] = field(default_factory=dict)
    take: dict[tuple[int, GroupKey], cp_model.LinearExprT] = field(default_factory=dict)
    node_groups: dict[NodeName, list[GroupKey]] = field(default_factory=dict)
    xvars: dict[tuple[int, GroupKey], cp_model.IntVar] = field(default_factory=dict)
    buckets: list[list[NodeName]] = field(default_factory=list)
    flags: dict[NodeName, cp_model.IntVar] = field(default_factory=dict)
    spread: bool = False


def _classes(problem: Problem) -> tuple[list[ClassKey], dict[int, list[Claim]]]:
    index: dict[ClassKey, int] = {}
    members: dict[int, list[Claim]] = defaultdict(list)
    frozen: dict[int, frozenset[DeviceIndex]] = {}
    for claim in problem.claims:
        if claim.error is not None:
            continue
        a = claim.requests[0].alternatives[0]
        eligible = frozen.get(id(a.eligible))
        if eligible is None:
            eligible = frozen[id(a.eligible)] = frozenset(a.eligible)
        key = (eligible, a.count, claim.priority)
        k = index.setdefault(key, len(index))
        members[k].append(claim)
    return list(index), members


def _groups(problem: Problem, classes: list[ClassKey], usage: Usage) -> dict[GroupKey, list[DeviceIndex]]:
    signature: dict[DeviceIndex, set[int]] = defaultdict(set)
    for k, (eligible, _, _) in enumerate(classes):
        for d in eligible:
            signature[d].add(k)
    groups: dict[GroupKey, list[DeviceIndex]] = defaultdict(list)
    for d in sorted(signature, key=lambda d: problem.devices[d].order):
        if usage.in_use(d):
            continue
        node = next(iter(problem.devices[d].nodes or ()))
        groups[(node, frozenset(signature[d]))].append(d)
    return dict(groups)


def _build(problem: Problem) -> _Model:
    usage = Usage.from_existing(problem)
    classes, members = _classes(problem)
    m = _Model(cp_model.CpModel(), classes, members, _groups(problem, classes, usage))
    for g in m.groups:
        m.node_groups.setdefault(g[0], []).append(g)
    per_class: dict[int, list[cp_model.IntVar]] = defaultdict(list)
    per_group: dict[GroupKey, list[cp_model.LinearExprT]] = defaultdict(list)
    for node, groups in sorted(m.node_groups.items()):
        for k, (_, size, _) in enumerate(classes):
            mine = [g for g in groups if k in g[1]]
            free = sum(len(m.groups[g]) for g in mine)
            upper = min(len(members[k]), free // size)
            if upper <= 0:
                continue
            n = m.model.new_int_var(0, upper, f"n[{k},{node}]")
            m.count[(k, node)] = n
            per_class[k].append(n)
            if len(mine) == 1:
                m.take[(k, mine[0])] = size * n
                per_group[mine[0]].append(size * n)
                continue
            xs = []
            for g in mine:
                x = m.model.new_int_var(0, len(m.groups[g]), f"x[{k},{node},{sorted(g[1])}]")
                m.take[(k, g)] = x
                m.xvars[(k, g)] = x
                per_group[g].append(x)
                xs.append(x)
            m.model.add(sum(xs) == size * n)
    for g, terms in per_group.items():
        if len(terms) > 1:
            m.model.add(sum(terms) <= len(m.groups[g]))
    for k, ns in per_class.items():
        m.model.add(sum(ns) <= len(members[k]))
    return m


def _node_loads(m: _Model) -> dict[NodeName, cp_model.LinearExprT]:
    """Devices each node gives to pending claims."""
    terms: dict[NodeName, list[cp_model.LinearExprT]] = defaultdict(list)
    for (k, node), v in m.count.items():
        terms[node].append(m.classes[k][1] * v)
    return {node: sum(terms.get(node, [])) for node in m.node_groups}


def _symmetry(m: _Model, problem: Problem, usage: Usage) -> None:
    """Identical nodes (same groups and sizes, nothing existing) take non-increasing loads in name order."""
    busy = {
        n for d in range(len(problem.devices)) if usage.in_use(DeviceIndex(d)) for n in problem.devices[d].nodes or ()
    }
    buckets: dict[tuple[object, ...], list[NodeName]] = defaultdict(list)
    for node, groups in sorted(m.node_groups.items()):
        if node in busy:
            continue
        shape = tuple(sorted((tuple(sorted(g[1])), len(m.groups[g])) for g in groups))
        buckets[shape].append(node)
    m.buckets = [nodes for nodes in buckets.values() if len(nodes) > 1]
    loads = _node_loads(m)
    for nodes in m.buckets:
        for a, b in itertools.pairwise(nodes):
            m.model.add(loads[a] >= loads[b])


def _objective(m: _Model, problem: Problem) -> tuple[cp_model.LinearExprT, cp_model.LinearExprT]:
    """(placement, fragmentation), both maximized, in that order."""
    placement = sum(m.classes[k][2] * v for (k, _), v in m.count.items())
    nodes = sorted(m.node_groups)
    by_node = _node_loads(m)
    loads = [by_node[node] for node in nodes]
    flags = []
    for node, load in zip(nodes, loads):
        flag = m.model.new_bool_var(f"{'active' if problem.objective == Objective.SPREAD else 'free'}[{node}]")
        capacity = sum(len(m.groups[g]) for g in m.node_groups[node])
        if problem.objective == Objective.SPREAD:
            m.model.add(load >= 1).only_enforce_if(flag)
        else:
            m.model.add(load <= capacity * (1 - flag))
        flags.append(flag)
        m.flags[node] = flag
    m.spread = problem.objective == Objective.SPREAD
    used_units = sum(loads)
    if problem.objective == Objective.SPREAD:
        return placement, sum(flags)
    if problem.objective == Objective.PACK:
        per_node = max((sum(len(m.groups[g]) for g in gs) for gs in m.node_groups.values()), default=0)
        return placement, (per_node + 1) * sum(flags) - used_units
    return placement, sum(flags) - (len(flags) + 1) * used_units


def _greedy(m: _Model) -> tuple[dict[tuple[int, NodeName], int], dict[tuple[int, GroupKey], int]]:
    """Greedy warm start: classes by priority per device (then smaller first), each claim to the
    node where it fits most tightly; devices of a node's groups taken in group order."""
    free = {g: len(v) for g, v in m.groups.items()}
    counts: dict[tuple[int, NodeName], int] = defaultdict(int)
    takes: dict[tuple[int, GroupKey], int] = defaultdict(int)
    nodes_of: dict[int, list[NodeName]] = defaultdict(list)
    for k, node in m.count:
        nodes_of[k].append(node)
    order = sorted(m.members, key=lambda k: (-m.classes[k][2] / m.classes[k][1], m.classes[k][1], k))
    for k in order:
        size = m.classes[k][1]
        groups = {node: [g for g in m.node_groups[node] if (k, g) in m.take] for node in nodes_of[k]}
        buckets: dict[int, list[NodeName]] = defaultdict(list)
        for node in sorted(nodes_of[k], reverse=True):
            buckets[sum(free[g] for g in groups[node])].append(node)
        for _ in m.members[k]:
            room = next((r for r in sorted(buckets) if r >= size and buckets[r]), None)
            if room is None:
                break
            node = buckets[room].pop()
            counts[(k, node)] += 1
            need = size
            for g in groups[node]:
                used = min(need, free[g])
                free[g] -= used
                takes[(k, g)] += used
                need -= used
            buckets[room - size].append(node)
    return _canonical(m, counts, takes)


def _canonical(
    m: _Model, counts: dict[tuple[int, NodeName], int], takes: dict[tuple[int, GroupKey], int]
) -> tuple[dict[tuple[int, NodeName], int], dict[tuple[int, GroupKey], int]]:
    """Permute the assignments of identical nodes so that loads are non-increasing (the symmetry rule)."""
    per_node_counts: dict[NodeName, dict[int, int]] = defaultdict(dict)
    for (k, node), n in counts.items():
        per_node_counts[node][k] = n
    per_node_takes: dict[NodeName, dict[tuple[int, frozenset[int]], int]] = defaultdict(dict)
    for (k, g), x in takes.items():
        per_node_takes[g[0]][(k, g[1])] = x
    for nodes in m.buckets:
        vectors = [(per_node_counts.pop(n, {}), per_node_takes.pop(n, {})) for n in nodes]
        vectors.sort(key=lambda v: -sum(m.classes[k][1] * n for k, n in v[0].items()))
        for node, (c, t) in zip(nodes, vectors):
            per_node_counts[node], per_node_takes[node] = c, t
    out_counts = {(k, node): n for node, c in per_node_counts.items() for k, n in c.items()}
    out_takes = {(k, (node, sig)): x for node, t in per_node_takes.items() for (k, sig), x in t.items()}
    return out_counts, out_takes


def _hint(m: _Model, counts: dict[tuple[int, NodeName], int], takes: dict[tuple[int, GroupKey], int]) -> None:
    for key, var in m.count.items():
        m.model.add_hint(var, counts.get(key, 0))
    for xkey, x in m.xvars.items():
        m.model.add_hint(x, takes.get(xkey, 0))
    load: dict[NodeName, int] = defaultdict(int)
    for (k, node), n in counts.items():
        load[node] += m.classes[k][1] * n
    for node, flag in m.flags.items():
        m.model.add_hint(flag, (load[node] > 0) == m.spread)


def _expand(
    m: _Model, problem: Problem, counts: dict[tuple[int, NodeName], int], takes: dict[tuple[int, GroupKey], int]
) -> dict[ClaimKey, Placement]:
    queues = {k: list(claims) for k, claims in m.members.items()}
    free = {g: list(devices) for g, devices in m.groups.items()}
    out: dict[ClaimKey, Placement] = {}
    for k, node in sorted(m.count, key=lambda key: (key[1], key[0])):
        placed = counts.get((k, node), 0)
        if not placed:
            continue
        size = m.classes[k][1]
        pool: list[DeviceIndex] = []
        for g in m.node_groups[node]:
            if (k, g) in m.take:
                amount = takes.get((k, g), 0)
                pool += free[g][:amount]
                free[g] = free[g][amount:]
        pool.sort(key=lambda d: problem.devices[d].order)
        for i in range(placed):
            claim = queues[k].pop(0)
            alternative = claim.requests[0].alternatives[0]
            devices = pool[i * size : (i + 1) * size]
            results = tuple(DeviceResult(alternative.name, d, tolerations=alternative.tolerations) for d in devices)
            out[claim.key] = Placement(claim.key, node, results)
    return out


def _values(
    m: _Model, solver: cp_model.CpSolver
) -> tuple[dict[tuple[int, NodeName], int], dict[tuple[int, GroupKey], int]]:
    counts = {key: int(solver.value(var)) for key, var in m.count.items()}
    takes = {key: int(solver.value(expr)) for key, expr in m.take.items()}
    return counts, takes


def _solver(params: SolveParams, budget: float) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.01, budget)
    solver.parameters.num_workers = max(1, params.workers)
    solver.parameters.random_seed = params.seed
    solver.parameters.symmetry_level = 0  # node symmetry is broken explicitly; detection costs seconds at scale
    return solver


def _keep(m: _Model, solver: cp_model.CpSolver) -> None:
    m.model.clear_hints()
    for var in [*m.count.values(), *m.xvars.values()]:
        m.model.add_hint(var, solver.value(var))


def solve_aggregated(problem: Problem, params: SolveParams) -> Solution:
    """Lexicographic in two solves: most priority-weighted claims, then fragmentation at that level."""
    started = time.perf_counter()
    deadline = started + params.time_limit_s
    m = _build(problem)
    _symmetry(m, problem, Usage.from_existing(problem))
    placement, fragmentation = _objective(m, problem)
    greedy = _greedy(m)
    _hint(m, *greedy)
    m.model.maximize(placement)
    solver = _solver(params, 0.6 * (deadline - time.perf_counter()))
    status = solver.solve(m.model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        solution = Solution("optimal", _expand(m, problem, *greedy), status="HEURISTIC (greedy warm start only)")
        solution.wall_s = time.perf_counter() - started
        return solution
    first_optimal = status == cp_model.OPTIMAL
    best = round(solver.objective_value)
    bound = round(solver.best_objective_bound)
    m.model.add(placement >= best)
    _keep(m, solver)
    m.model.maximize(fragmentation)
    second = _solver(params, deadline - time.perf_counter())
    status2 = second.solve(m.model)
    if status2 in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        solver, status = second, status2 if first_optimal else cp_model.FEASIBLE
    solution = Solution("optimal", _expand(m, problem, *_values(m, solver)), status=solver.status_name(status))
    solution.proven_optimal = status == cp_model.OPTIMAL and first_optimal
    solution.objective = {
        "placement": best,
        "placementBound": bound,
        "fragmentation": int(solver.value(fragmentation)),
    }
    solution.wall_s = time.perf_counter() - started
    return solution
