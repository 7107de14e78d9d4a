"""Why a claim was not placed, in the terms the user wrote.

For each unplaced claim (its whole gang at once), in order:

1. static reasons, no solver: a CEL run-time error first-fit met where Kubernetes' allocator would
   (``Solution.blocked``); a compile error or admission failure recorded at compile time; a request whose
   selectors leave too few devices (``selector_excludes_all``, naming each selector with its file:line and
   how many devices it excluded; ``cel_runtime_error`` when a selector failed at run time on some of them);
2. the claim alone, with existing allocations: a small CP-SAT model with one assumption literal per
   constraint and per quota; an infeasible core names the constraint (``constraint_unsatisfiable``) or
   quota (``quota_exceeded``); otherwise existing allocations (``capacity_exhausted`` /
   ``counters_exhausted``) or node locality (``no_single_node``) are to blame;
3. contention: the claim against the placements actually made, one assumption literal per placed claim
   (its devices, shared capacity and counters) and per quota; the core, shrunk to a minimal set by
   deletion, names the claims that exhaust the capacity, with MIG geometry spelled out
   ("4g.40gb fits only at slot 0, taken on every eligible GPU: ...").
"""

from __future__ import annotations

import time
from collections import defaultdict

from ortools.sat.python import cp_model

from gpupolicy.solver.model import constraints, devices, placement
from gpupolicy.solver.model.quota import take_amount
from gpupolicy.solver.model.variables import Variables, create
from gpupolicy.solver.problem import AllocationMode, Alternative, Claim, ClaimKey, DeviceIndex, Problem, Quota
from gpupolicy.solver.quotas import existing_usage, usage_of
from gpupolicy.solver.result import Placement, Reason, Solution, SolveParams
from gpupolicy.solver.state import Usage

Assumptions = dict[str, cp_model.IntVar]


def explain(problem: Problem, solution: Solution, params: SolveParams) -> dict[ClaimKey, list[Reason]]:
    out: dict[ClaimKey, list[Reason]] = {}
    deadline = time.perf_counter() + params.explain_total_s
    for gang, keys in problem.gangs.items():
        if all(k in solution.placements for k in keys):
            continue
        members = [problem.claim_index[k] for k in keys]
        blocked = [solution.blocked[k] for k in keys if k in solution.blocked][:1]
        reasons = blocked or _static(members)
        if not reasons and time.perf_counter() > deadline:
            reasons = [_quick(problem, solution, members)]
        if not reasons:
            budget = max(0.05, min(params.explain_time_limit_s, deadline - time.perf_counter()))
            reasons = _dynamic(problem, solution, members, params, budget)
        if len(members) > 1:
            reasons = [Reason(r.code, f"pod {gang} (all claims or none): {r.message}") for r in reasons]
        for key in keys:
            out[key] = reasons
    return out


def _static(members: list[Claim]) -> list[Reason]:
    reasons: list[Reason] = []
    for claim in members:
        if claim.error is not None:
            reasons.append(Reason(claim.error[0], f"claim {claim.key}: {claim.error[1]}"))
            continue
        for request in claim.requests:
            if all(_too_few(a) for a in request.alternatives):
                text = "; ".join(_describe(a) for a in request.alternatives)
                code = "not_admitted" if all(_refused(a) for a in request.alternatives) else "selector_excludes_all"
                if code == "selector_excludes_all" and any(a.errors for a in request.alternatives):
                    code = "cel_runtime_error"  # a selector fails on devices it needed: unschedulable for now
                reasons.append(Reason(code, f"claim {claim.key}: {text}"))
    return reasons


def _quick(problem: Problem, solution: Solution, members: list[Claim]) -> Reason:
    """Without a solver: how many eligible devices are held by others."""
    held = {r.device for p in solution.placements.values() for r in p.results if not r.admin_access}
    held |= {r.device for e in problem.existing for r in e.results if not r.admin_access}
    eligible = {d for c in members for r in c.requests for a in r.alternatives for d in a.eligible}
    busy = len(eligible & held)
    return Reason(
        "capacity_exhausted",
        f"{_who(members)}: {busy} of {len(eligible)} eligible devices are held by other claims and no node has "
        "enough of the rest (not analysed further: the explanation time budget is spent)",
    )


def _refused(alternative: Alternative) -> bool:
    """The policy's admission rules, not the selectors, took away the devices it needed."""
    need = 1 if alternative.mode == AllocationMode.ALL else alternative.count
    refused = sum(e.excluded for e in alternative.exclusions if e.rule.startswith("admission rule"))
    return refused > 0 and len(alternative.eligible) + refused >= need


def _too_few(alternative: Alternative) -> bool:
    need = 1 if alternative.mode == AllocationMode.ALL else alternative.count
    return len(alternative.eligible) < need


def _describe(alternative: Alternative) -> str:
    need = "at least 1" if alternative.mode == AllocationMode.ALL else str(alternative.count)
    head = f"request {alternative.name!r} (class {alternative.class_name!r}) wants {need} device(s)"
    head += f", {len(alternative.eligible)} of {alternative.candidates} match"
    parts = []
    for ex in alternative.exclusions:
        where = f" at {ex.location}" if ex.location else ""
        parts.append(f"{ex.rule}{where} excludes {ex.excluded}")
    return head + (": " + ", ".join(parts) if parts else "")


def _alone(problem: Problem, members: list[Claim]) -> tuple[Variables, Assumptions]:
    model = cp_model.CpModel()
    v = create(model, problem, Usage.from_existing(problem), members)
    placement.build(v)
    devices.build(v)
    assumptions: Assumptions = {}
    constraints.build(v, assumptions)
    for claim in members:
        model.add(v.placed[claim.key] == 1)
    return v, assumptions


def _solve(
    model: cp_model.CpModel, lits: list[cp_model.IntVar], params: SolveParams, budget: float
) -> tuple[int, list[int]]:
    model.clear_assumptions()
    model.add_assumptions(lits)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = budget
    solver.parameters.num_workers = 1  # assumptions cores need a single worker
    solver.parameters.random_seed = params.seed
    status = solver.solve(model)
    core = list(solver.sufficient_assumptions_for_infeasibility()) if status == cp_model.INFEASIBLE else []
    return status, core


def _minimal(model: cp_model.CpModel, named: Assumptions, params: SolveParams, budget: float) -> list[str] | None:
    """A minimal set of assumption names that is infeasible, or None if all together are feasible."""
    deadline = time.perf_counter() + budget
    by_index = {lit.Index(): name for name, lit in named.items()}
    status, core = _solve(model, list(named.values()), params, budget)
    if status != cp_model.INFEASIBLE:
        return None
    current = sorted(by_index[i] for i in core if i in by_index)
    for name in list(current):
        if time.perf_counter() > deadline:
            break
        trial = [n for n in current if n != name]
        status, core = _solve(model, [named[n] for n in trial], params, max(0.05, deadline - time.perf_counter()))
        if status == cp_model.INFEASIBLE:
            current = sorted(by_index[i] for i in core if i in by_index) or trial
    return current


def _dynamic(
    problem: Problem, solution: Solution, members: list[Claim], params: SolveParams, budget: float
) -> list[Reason]:
    v, named = _alone(problem, members)
    for i, quota in enumerate(problem.quotas):
        _guard_quota(v, named, i, quota, {})
    core = _minimal(v.model, named, params, budget / 2)
    if core is not None:
        reasons = _name_rules(problem, members, core)
        return reasons or _alone_reason(problem, members, params, budget / 2)
    v, named = _alone(problem, members)
    holders = _guard_placements(v, named, solution)
    quota_extra = {k: p for k, p in solution.placements.items()}
    for i, quota in enumerate(problem.quotas):
        _guard_quota(v, named, i, quota, quota_extra)
    core = _minimal(v.model, named, params, budget / 2)
    if core is None:
        return [Reason("not_chosen", f"{_who(members)} fit next to every placement made; {_why_not(solution)}")]
    reasons = _name_rules(problem, members, core)
    blockers = sorted(name.split(":", 1)[1] for name in core if name.startswith("claim:"))
    if blockers:
        reasons.append(_capacity_reason(problem, members, blockers, holders))
    return reasons


def _why_not(solution: Solution) -> str:
    if solution.strategy == "optimal":
        return "the solver stopped at its time limit before finding it"
    return f"{solution.strategy} did not try it (search limit or arrival order)"


def _keys(members: list[Claim]) -> str:
    return ", ".join(c.key for c in members)


def _who(members: list[Claim]) -> str:
    return f"claim {members[0].key}" if len(members) == 1 else f"claims {_keys(members)}"


def _name_rules(problem: Problem, members: list[Claim], core: list[str]) -> list[Reason]:
    reasons = []
    for name in core:
        kind, _, rest = name.partition(":")
        if kind == "quota":
            q = problem.quotas[int(rest)]
            where = f" ({q.location})" if q.location else ""
            used = existing_usage(problem, q)
            reasons.append(
                Reason(
                    "quota_exceeded",
                    f"namespace {q.namespace} quota on {q.resource}{where}: limit {q.limit}, "
                    f"{used} held by existing allocations; {_who(members)} does not fit in what is left",
                )
            )
        elif kind == "constraint":
            key, _, index = rest.rpartition(":")
            claim = problem.claim_index[ClaimKey(key)]
            c = claim.constraints[int(index)]
            what = "distinctAttribute" if c.distinct else "matchAttribute"
            scope = ", ".join(c.requests) or "all requests"
            reasons.append(
                Reason(
                    "constraint_unsatisfiable",
                    f"claim {key}: constraint #{index} {what} {c.attribute} over {scope}: "
                    "no node has enough eligible free devices that satisfy it",
                )
            )
    return reasons


def _alone_reason(problem: Problem, members: list[Claim], params: SolveParams, budget: float) -> list[Reason]:
    empty = Problem(problem.devices, problem.claims, problem.counter_sets, problem.nodes)
    v, _ = _alone(empty, members)
    if _minimal(v.model, {}, params, budget) is None:
        held = sorted({e.claim for e in problem.existing})
        uses_counters = any(
            problem.devices[d].consumes for c in members for r in c.requests for a in r.alternatives for d in a.eligible
        )
        code = "counters_exhausted" if uses_counters else "capacity_exhausted"
        text = f"{_who(members)}: eligible devices are held by existing allocations ({', '.join(held)})"
        return [Reason(code, text)]
    best = _most_per_node(problem, members)
    return [Reason("no_single_node", f"{_who(members)}: no single node offers all requested devices ({best})")]


def _most_per_node(problem: Problem, members: list[Claim]) -> str:
    per_node: dict[str, int] = defaultdict(int)
    for claim in members:
        for request in claim.requests:
            for d in request.alternatives[0].eligible:
                for node in problem.devices[d].nodes or ("*",):
                    per_node[node] += 1
    if not per_node:
        return "no eligible device"
    node, count = max(sorted(per_node.items()), key=lambda kv: kv[1])
    return f"at most {count} eligible on {node}"


def _guard_placements(v: Variables, named: Assumptions, solution: Solution) -> dict[ClaimKey, set[DeviceIndex]]:
    """Other placements as reservations, each switched on by its own assumption literal."""
    m = v.model
    holders: dict[ClaimKey, set[DeviceIndex]] = {}
    holding: dict[DeviceIndex, list[tuple[cp_model.IntVar, dict[str, int]]]] = defaultdict(list)
    target_sets = {cs for d in v.by_device for cs in v.problem.devices[d].counter_sets()}
    for key, placed in sorted(solution.placements.items()):
        results = [r for r in placed.results if not r.admin_access]
        relevant = [
            r
            for r in results
            if r.device in v.by_device or target_sets.intersection(v.problem.devices[r.device].counter_sets())
        ]
        if not relevant:
            continue
        lit = m.new_bool_var(f"keep[{key}]")
        named[f"claim:{key}"] = lit
        holders[key] = {r.device for r in results}
        for r in results:
            holding[r.device].append((lit, dict(r.consumed)))
    touched: dict[DeviceIndex, cp_model.IntVar] = {}
    for d in sorted(set(holding) | set(v.used)):
        h = m.new_bool_var(f"held[{d}]")
        touched[d] = h
        for lit, _ in holding.get(d, []):
            m.add_implication(lit, h)
        if d in v.used:
            m.add_implication(v.used[d], h)
        device = v.problem.devices[d]
        if not device.multi_allocatable and d in v.used and holding.get(d):
            for lit, _ in holding[d]:
                m.add_bool_or([v.used[d].Not(), lit.Not()])
        if device.multi_allocatable and holding.get(d):
            for name, cap in device.capacity.items():
                left = cap.value - v.usage.capacity.get((d, name), 0)
                mine = [(v.consumed[t].get(name, 0), v.take[t]) for t in v.by_device.get(d, []) if t not in v.admin]
                others = [(c.get(name, 0), lit) for lit, c in holding[d]]
                m.add(sum(a * x for a, x in mine + others) <= left)
    by_counter: dict[tuple[str, str, str, str], list[tuple[int, cp_model.IntVar]]] = defaultdict(list)
    for d, h in touched.items():
        if v.usage.in_use(d):
            continue
        for ckey, need in v.usage.device_counters(d).items():
            by_counter[ckey].append((need, h))
    for ckey, terms in sorted(by_counter.items()):
        counter_set = v.problem.counter_index.get(ckey[:3])
        limit = counter_set.counters.get(ckey[3], 0) if counter_set else 0
        m.add(sum(a * x for a, x in terms) <= limit - v.usage.counters.get(ckey, 0))
    return holders


def _guard_quota(v: Variables, named: Assumptions, i: int, quota: Quota, placed: dict[ClaimKey, Placement]) -> None:
    keys = [c.key for c in v.claims if c.namespace == quota.namespace]
    if not keys:
        return
    base = existing_usage(v.problem, quota)
    terms: list[cp_model.LinearExprT] = []
    for key, p in placed.items():
        if v.problem.claim_index[key].namespace != quota.namespace:
            continue
        lit = named.get(f"claim:{key}")
        used = usage_of(v.problem, quota, p.results)
        if lit is None:
            base += used
        else:
            terms.append(used * lit)
    if quota.resource == "claims":
        mine: cp_model.LinearExprT = sum(v.placed[k] for k in keys)
    else:
        mine = sum(take_amount(v, quota, t) * v.take[t] for k in keys for t in v.by_claim.get(k, []))
    lit = v.model.new_bool_var(f"quota[{i}]")
    named[f"quota:{i}"] = lit
    v.model.add(mine + sum(terms) <= quota.limit - base).only_enforce_if(lit)


def _capacity_reason(
    problem: Problem, members: list[Claim], blockers: list[str], holders: dict[ClaimKey, set[DeviceIndex]]
) -> Reason:
    eligible = {d for c in members for r in c.requests for a in r.alternatives for d in a.eligible}
    direct = any(holders.get(ClaimKey(b), set()) & eligible for b in blockers)
    if direct or not any(problem.devices[d].consumes for d in eligible):
        text = f"{_who(members)}: eligible devices are taken by {', '.join(blockers)}"
        return Reason("capacity_exhausted", text)
    return Reason("counters_exhausted", _geometry(problem, members, blockers, holders))


def _geometry(
    problem: Problem, members: list[Claim], blockers: list[str], holders: dict[ClaimKey, set[DeviceIndex]]
) -> str:
    """ "4g.40gb fits only at slot 0, taken on every eligible GPU: node-a/gpu-0 by default/x"."""
    parts = []
    for claim in members:
        for request in claim.requests:
            for alternative in request.alternatives:
                parts.append(_profile_slots(problem, alternative, blockers, holders))
    return f"{_who(members)}: " + "; ".join(p for p in parts if p)


def _profile_slots(
    problem: Problem, alternative: Alternative, blockers: list[str], holders: dict[ClaimKey, set[DeviceIndex]]
) -> str:
    profiles: dict[str, set[int]] = defaultdict(set)
    gpus: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for d in alternative.eligible:
        device = problem.devices[d]
        profile = next((str(v) for k, v in device.attributes.items() if k.endswith("/profile")), device.name)
        slots = mig_slots(problem, d)
        profiles[profile].add(min(slots) if slots else 0)
        for cs in device.counter_sets():
            gpus[cs] = []
    for b in blockers:
        for d in holders.get(ClaimKey(b), set()):
            for cs in problem.devices[d].counter_sets():
                if cs in gpus and b not in gpus[cs]:
                    gpus[cs].append(b)
    where = ", ".join(f"{cs[1]}/{_gpu_name(cs[2])} by {' and '.join(sorted(h))}" for cs, h in sorted(gpus.items()) if h)
    shapes = []
    for profile, starts in sorted(profiles.items()):
        slot_list = ", ".join(str(s) for s in sorted(starts))
        only = "only " if len(starts) == 1 else ""
        shapes.append(f"{profile} fits {only}at slot{'s' if len(starts) > 1 else ''} {slot_list}")
    return f"{' / '.join(shapes)}, taken on every eligible GPU: {where}"


def _gpu_name(counter_set: str) -> str:
    return counter_set.removesuffix("-counter-set").removesuffix("-counters")


def mig_slots(problem: Problem, d: DeviceIndex) -> list[int]:
    """Memory slices (MIG slots) a device occupies, from its ``memory-slice-<i>`` counters."""
    out = []
    for use in problem.devices[d].consumes:
        for name in use.counters:
            if name.startswith("memory-slice-") or name.startswith("memorySlice"):
                digits = name.rsplit("-", 1)[-1].removeprefix("memorySlice")
                if digits.isdigit():
                    out.append(int(digits))
    return sorted(out)
