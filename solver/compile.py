"""Kubernetes objects (and a policy) → a :class:`gpupolicy.solver.problem.Problem`.

- devices and counter sets from ResourceSlices (:mod:`gpupolicy.solver.compile_devices`);
- per request alternative, the eligible devices: class selectors, then request selectors (CEL,
  evaluated once per expression and device), then the policy's admission rules, then taints against
  tolerations, then capacity requests; every stage records how many devices it excluded and where
  it was written, for explanations;
- a device on which a selector fails at run time is not eligible; it is kept in the alternative's ``errors``
  with the allocator's message (``selector #i on device driver/pool/device: CEL runtime error: …``, ``class
  <name>: selector #i …`` for a class selector), for the strategies to decide whether Kubernetes would ever
  evaluate it (docs/solver.md, "CEL run-time errors"); a request in ``allocationMode: All`` cannot use a node
  with such a device, since the allocator evaluates every device of the node for it;
- a claim that needs more devices than one allocation result holds (32) fails with ``claim_limit_exceeded``,
  as the structured allocator's own check does before it searches (see :func:`claim_limit_error`);
- claims already allocated become fixed :class:`Existing` allocations;
- the policy's priority tiers become weights (each tier outweighs all lower tiers together), its
  quotas per-namespace :class:`Quota` rows, its objective the model's objective.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.errors import Diagnostic, DiagnosticError, Location
from gpupolicy.policy.k8s.claim import RequestFields, ResourceClaim
from gpupolicy.policy.k8s.deviceclass import DeviceClass
from gpupolicy.policy.k8s.slice import ResourceSlice
from gpupolicy.policy.policyfile.compiled import ClaimInfo, CompiledPolicy, RequestInfo
from gpupolicy.solver import compile_existing
from gpupolicy.solver.compile_devices import DeviceTable, NodeInfo, build_devices, qint
from gpupolicy.solver.mig_slices import compute_slices
from gpupolicy.solver.problem import (
    AllocationMode,
    Alternative,
    Claim,
    ClaimKey,
    Constraint,
    DeviceIndex,
    Disruption,
    Eviction,
    Exclusion,
    Objective,
    Problem,
    Quota,
    Request,
    Toleration,
    claim_limit_error,
    tolerated,
)
from gpupolicy.solver.selectors import SelectorCache

Locate = Callable[[Sequence[str | int]], Location]


def _nowhere(path: Sequence[str | int]) -> Location:
    return Location()


@dataclass(frozen=True)
class PendingClaim:
    claim: ResourceClaim
    locate: Locate = _nowhere
    gang: str | None = None


@dataclass(frozen=True)
class ClassInfo:
    device_class: DeviceClass
    locate: Locate = _nowhere


@dataclass
class Compiled:
    problem: Problem
    table: DeviceTable
    claims: dict[ClaimKey, ResourceClaim]
    classes: dict[str, DeviceClass]
    diagnostics: list[Diagnostic] = field(default_factory=list)


class _ClaimFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class _Context:
    table: DeviceTable
    classes: Mapping[str, ClassInfo]
    policy: CompiledPolicy | None
    cache: SelectorCache = field(default_factory=SelectorCache)
    views: list[DeviceView] = field(default_factory=list)
    alternatives: dict[object, Alternative | _ClaimFailed] = field(default_factory=dict)


def compile_problem(
    slices: Sequence[ResourceSlice],
    classes: Mapping[str, ClassInfo],
    pending: Sequence[PendingClaim],
    *,
    allocated: Sequence[ResourceClaim] = (),
    nodes: Sequence[NodeInfo] = (),
    policy: CompiledPolicy | None = None,
    evictions: Mapping[ClaimKey, Eviction] | None = None,
    budgets: Mapping[str, int] | None = None,
    disruption: Disruption | None = None,
) -> Compiled:
    """``evictions`` (with ``disruption``): the allocated claims a solve may preempt or move
    (:mod:`gpupolicy.solver.evictions`); ``budgets``: the evictions each disruption budget allows."""
    disruption = disruption or Disruption()
    table = build_devices(slices, nodes)
    ctx = _Context(table, classes, policy, views=[d.view for d in table.pool_devices])
    claims: list[Claim] = []
    tiers: dict[ClaimKey, tuple[str, int]] = {}
    for item in pending:
        claim, priority = _claim(ctx, item)
        claims.append(claim)
        tiers[claim.key] = (claim.tier, priority)
    candidates = compile_existing.candidates(allocated, evictions or {}, disruption)
    for claim_obj in candidates:
        tiers[compile_existing.claim_key(claim_obj)] = (
            ctx.policy.priority_of(ClaimInfo.from_claim(claim_obj)) if ctx.policy else ("", 0)
        )
    movers = [
        c for c in candidates if disruption.defragment and (evictions or {})[compile_existing.claim_key(c)].movable
    ]
    for claim_obj in movers:  # the new place of a movable claim: compiled as a pending claim of its own pod
        eviction = (evictions or {})[compile_existing.claim_key(claim_obj)]
        moving, _ = _claim(ctx, PendingClaim(compile_existing.unallocated(claim_obj), gang=f"move:{eviction.pods[0]}"))
        claims.append(dataclasses.replace(moving, moving=True))
    weights = compile_existing.weights(tiers)
    claims = [dataclasses.replace(c, priority=weights[c.key], level=tiers[c.key][1]) for c in claims]
    objective = Objective(policy.objective) if policy is not None else Objective.PACK
    existing = compile_existing.existing(table, allocated)
    keys = {compile_existing.claim_key(c) for c in candidates}
    existing = [
        dataclasses.replace(e, tier=tiers[e.claim][0], level=tiers[e.claim][1], weight=weights[e.claim],
                            eviction=(evictions or {})[e.claim])
        if e.claim in keys else e
        for e in existing
    ]  # fmt: skip
    problem = Problem(
        devices=tuple(table.devices),
        claims=tuple(claims),
        counter_sets=tuple(table.counter_sets),
        nodes=tuple(table.nodes),
        existing=tuple(existing),
        quotas=tuple(_quotas(table, policy)),
        objective=objective,
        disruption=disruption,
        budgets=dict(budgets or {}),
    )
    return Compiled(
        problem,
        table,
        {c.key: p.claim for c, p in zip(claims, pending)} | {compile_existing.claim_key(c): c for c in movers},
        {name: info.device_class for name, info in classes.items()},
    )


def _claim(ctx: _Context, item: PendingClaim) -> tuple[Claim, int]:
    obj = item.claim
    meta = obj.metadata
    namespace, name = meta.namespace_or_default, meta.name or ""
    info = ClaimInfo.from_claim(obj)
    tier, priority = ctx.policy.priority_of(info) if ctx.policy is not None else ("", 0)
    devices = obj.spec.devices
    requests: list[Request] = []
    error: tuple[str, str] | None = None
    for ri, request in enumerate(devices.requests if devices and devices.requests else []):
        alternatives = []
        for ai, (alt_name, fields) in enumerate(request.alternatives()):
            sub = ("exactly",) if request.exactly is not None else ("firstAvailable", ai)
            path = ("spec", "devices", "requests", ri, *sub)
            try:
                alternatives.append(_cached_alternative(ctx, item, info, str(alt_name), fields, path))
            except _ClaimFailed as failed:
                error = error or (failed.code, failed.message)
                alternatives.append(Alternative(str(alt_name), fields.device_class_name, ()))
        requests.append(Request(request.name, tuple(alternatives)))
    limit = claim_limit_error(requests, ctx.table.devices) if error is None else None
    if limit is not None:
        where = item.locate(("spec", "devices", "requests", limit[0]))
        error = ("claim_limit_exceeded", f"{limit[1]} ({where})" if where.line else limit[1])
    constraints = tuple(
        Constraint(
            c.match_attribute or c.distinct_attribute or "",
            c.match_attribute is None and c.distinct_attribute is not None,  # with both, matchAttribute counts
            tuple(c.requests or ()),
        )
        for c in (devices.constraints if devices and devices.constraints else [])
    )
    claim = Claim(
        namespace,
        name,
        tuple(requests),
        constraints,
        tier=tier,
        gang=item.gang,
        error=error,
        location=str(item.locate(())),
        uid=meta.uid or "",
    )
    return claim, priority


def _cached_alternative(
    ctx: _Context, item: PendingClaim, info: ClaimInfo, name: str, fields: RequestFields, path: tuple[str | int, ...]
) -> Alternative:
    """Identical requests (same class, selectors written at the same place, same claim context for the
    policy's rules) share one compiled alternative: thousands of replicas cost one evaluation."""
    where = str(item.locate((*path, "selectors"))) if fields.selectors else ""
    context: object = None
    if ctx.policy is not None and (ctx.policy.admission or ctx.policy.preferences):
        context = (
            info.namespace,
            info.name,
            tuple(sorted(info.labels.items())),
            tuple(sorted(info.annotations.items())),
        )
    key = (name, fields.model_dump_json(), where, context)
    cached = ctx.alternatives.get(key)
    if cached is None:
        try:
            cached = _alternative(ctx, item, info, name, fields, path)
        except _ClaimFailed as failed:
            cached = failed
        ctx.alternatives[key] = cached
    if isinstance(cached, _ClaimFailed):
        raise cached
    return cached


def _alternative(
    ctx: _Context, item: PendingClaim, info: ClaimInfo, name: str, fields: RequestFields, path: tuple[str | int, ...]
) -> Alternative:
    class_info = ctx.classes.get(fields.device_class_name)
    if class_info is None:
        raise _ClaimFailed(
            "device_class_not_found", f"request {name}: DeviceClass {fields.device_class_name!r} not found"
        )
    remaining = list(range(len(ctx.table.devices)))
    candidates = len(remaining)
    exclusions: list[Exclusion] = []
    errors: dict[int, tuple[str, str]] = {}
    class_exprs = class_info.device_class.cel_expressions
    for i, expr in enumerate(class_exprs):
        loc = class_info.locate(("spec", "selectors", i, "cel", "expression"))
        remaining = _filter(
            ctx,
            remaining,
            expr,
            loc,
            f'class "{fields.device_class_name}" selector #{i}',
            exclusions,
            f"class {fields.device_class_name}: selector #{i}",
            errors,
        )
    for i, expr in enumerate(fields.cel_expressions):
        loc = item.locate((*path, "selectors", i, "cel", "expression"))
        remaining = _filter(
            ctx, remaining, expr, loc, f'request "{name}" selector #{i}', exclusions, f"selector #{i}", errors
        )
    request_info = RequestInfo.from_fields(name, fields)
    remaining = _admission(ctx, remaining, info, request_info, exclusions)
    tolerations = tuple(
        Toleration(t.key or "", t.effective_operator, t.value or "", t.effect or "") for t in fields.tolerations or ()
    )
    kept = [d for d in remaining if tolerated(ctx.table.devices[d].taints, tolerations)]
    _exclude(exclusions, "device taints (not tolerated)", "", len(remaining) - len(kept))
    capacity = {k: qint(v) for k, v in (fields.capacity.requests or {}).items()} if fields.capacity else {}
    capacity = {_qualify(ctx, kept, k): v for k, v in capacity.items()}
    alternative = Alternative(
        name,
        fields.device_class_name,
        (),
        AllocationMode.ALL if fields.mode == "All" else AllocationMode.EXACT_COUNT,
        fields.effective_count,
        admin_access=bool(getattr(fields, "admin_access", None)),
        tolerations=tolerations,
        capacity=capacity,
    )
    fit = [d for d in kept if _capacity_fits(ctx, alternative, d)]
    _exclude(exclusions, "capacity requests", str(item.locate((*path, "capacity"))), len(kept) - len(fit))
    if alternative.mode == AllocationMode.ALL and any(d in ctx.table.incomplete for d in fit):
        _exclude(exclusions, "incomplete pool (allocationMode All)", "", len(fit))
        fit = []
    if alternative.mode == AllocationMode.ALL and errors:
        usable = _clear_of(ctx, fit, errors)
        rule = "a selector fails on another device of the node (allocationMode All)"
        _exclude(exclusions, rule, "", len(fit) - len(usable))
        fit = usable
    if alternative.mode == AllocationMode.ALL and len(kept) < len(remaining):
        # the allocator takes every matching device whose capacity fits, and a taint on one fails them all
        tolerant = set(kept)
        blocking = [d for d in remaining if d not in tolerant and _capacity_fits(ctx, alternative, d)]
        usable = _clear_of(ctx, fit, blocking)
        rule = "another matching device of the node has a taint not tolerated (allocationMode All)"
        _exclude(exclusions, rule, "", len(fit) - len(usable))
        fit = usable
    scores = _scores(ctx, fit, info, request_info)
    return Alternative(
        alternative.name,
        alternative.class_name,
        tuple(DeviceIndex(d) for d in fit),
        alternative.mode,
        alternative.count,
        alternative.admin_access,
        alternative.tolerations,
        alternative.capacity,
        tuple(exclusions),
        candidates,
        scores,
        {DeviceIndex(d): e for d, e in errors.items()},
    )


def _clear_of(ctx: _Context, devices: list[int], blocking: Collection[int]) -> list[int]:
    """The devices on nodes none of the ``blocking`` devices is usable from: an ``All`` request cannot use such a
    node (the allocator evaluates every device of the node for it, and one that fails a selector, or matches but
    cannot be taken, fails the request)."""
    table = ctx.table.devices
    if any(table[d].nodes is None for d in blocking):
        return []
    bad = {n for d in blocking for n in table[d].nodes or ()}
    out = []
    for d in devices:
        nodes = table[d].nodes
        if nodes is not None and not nodes & bad:
            out.append(d)
    return out


def _qualify(ctx: _Context, devices: list[int], name: str) -> str:
    if "/" in name or not devices:
        return name
    return f"{ctx.table.devices[devices[0]].driver}/{name}"


def _capacity_fits(ctx: _Context, alternative: Alternative, d: int) -> bool:
    device = ctx.table.devices[d]
    if device.multi_allocatable:
        return alternative.consumed(device) is not None
    for name, amount in alternative.capacity.items():
        cap = device.capacity.get(name)
        if cap is None or cap.value < amount:
            return False
    return True


def _exclude(exclusions: list[Exclusion], rule: str, location: str, count: int) -> None:
    if count > 0:
        exclusions.append(Exclusion(rule, location, count))


def _filter(
    ctx: _Context,
    devices: list[int],
    expr: str,
    loc: Location,
    rule: str,
    exclusions: list[Exclusion],
    error_prefix: str,
    errors: dict[int, tuple[str, str]],
) -> list[int]:
    """The devices the selector matches; those where it fails at run time go to ``errors`` with the message
    Kubernetes' allocator gives (``<prefix> on device <driver>/<pool>/<device>: CEL runtime error: …``)."""
    try:
        selector = ctx.cache.get(expr, loc)
    except DiagnosticError as exc:
        raise _ClaimFailed("cel_compile_error", f"{error_prefix}: {exc.diagnostics[0].message}") from exc
    filtered = selector.filter(devices, ctx.views)
    for d, failure in filtered.failed.items():
        device = ctx.table.devices[d]
        where = f"{error_prefix} on device {device.driver}/{device.pool}/{device.name}"
        errors[d] = (failure.code, f"{where}: CEL runtime error: {failure.message}")
    where = str(loc) if loc.line else ""
    if filtered.failed:
        first = errors[min(filtered.failed, key=lambda d: ctx.table.devices[d].order)]
        _exclude(exclusions, f"{rule} fails at run time ({first[1]})", where, len(filtered.failed))
    _exclude(exclusions, rule, where, len(devices) - len(filtered.kept) - len(filtered.failed))
    return filtered.kept


def _admission(
    ctx: _Context, devices: list[int], info: ClaimInfo, request: RequestInfo, exclusions: list[Exclusion]
) -> list[int]:
    if ctx.policy is None or not ctx.policy.admission:
        return devices
    kept = []
    refused: dict[tuple[str, str], int] = defaultdict(int)
    for d in devices:
        try:
            decision = ctx.policy.admit(info, request, ctx.table.pool_devices[d].view)
        except DiagnosticError as exc:
            raise _ClaimFailed("cel_runtime_error", f"admission: {exc.diagnostics[0].message}") from exc
        except Exception as exc:  # a CEL run-time error inside an admission rule
            raise _ClaimFailed("cel_runtime_error", f"admission: CEL runtime error: {exc}") from exc
        if decision.allowed:
            kept.append(d)
        else:
            rule = f'admission rule "{decision.rule or "default: Deny"}"' + (
                f" ({decision.message})" if decision.message else ""
            )
            refused[(rule, str(decision.location) if decision.location else "")] += 1
    for (rule, location), count in sorted(refused.items()):
        _exclude(exclusions, rule, location, count)
    return kept


def _scores(ctx: _Context, devices: list[int], info: ClaimInfo, request: RequestInfo) -> dict[DeviceIndex, int]:
    if ctx.policy is None or not ctx.policy.preferences:
        return {}
    out = {}
    for d in devices:
        try:
            score = ctx.policy.preference_score(info, request, ctx.table.pool_devices[d].view)
        except Exception:  # a failing preference only loses its weight
            score = 0
        if score:
            out[DeviceIndex(d)] = score
    return out


def _quotas(table: DeviceTable, policy: CompiledPolicy | None) -> list[Quota]:
    if policy is None:
        return []
    out = []
    for namespace, q in sorted(policy.quotas.items()):
        if q.gpus is not None:
            weights = {DeviceIndex(i): 1 for i, d in enumerate(table.devices) if _kind(d.attributes) != "mig"}
            out.append(Quota(namespace, "gpus", q.gpus, weights=weights))
        if q.mig_compute_slices is not None:
            weights = {DeviceIndex(i): compute_slices(d.attributes) for i, d in enumerate(table.devices)}
            out.append(Quota(namespace, "migComputeSlices", q.mig_compute_slices, weights=weights))
        if q.gpu_memory is not None:
            drivers = sorted({d.driver for d in table.devices}) or [policy.driver_name]
            out.append(Quota(namespace, "gpuMemory", qint(q.gpu_memory), capacity=f"{drivers[0]}/memory"))
    return out


def _kind(attributes: Mapping[str, object]) -> str:
    return next((str(v) for k, v in attributes.items() if k.endswith("/type")), "gpu")
