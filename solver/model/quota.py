"""Per-namespace quotas: claims, devices, or a capacity summed over the devices taken."""

from __future__ import annotations

from ortools.sat.python import cp_model

from gpupolicy.solver.model.variables import TakeKey, Variables
from gpupolicy.solver.problem import DeviceResult, Quota
from gpupolicy.solver.quotas import existing_usage, usage_of


def take_amount(v: Variables, quota: Quota, t: TakeKey) -> int:
    """What one take counts against ``quota`` (not used for "claims")."""
    device = v.problem.devices[t[2]]
    result = DeviceResult(t[1], t[2], admin_access=t in v.admin, consumed=v.consumed[t])
    return quota.amount(result, device)


def build(v: Variables, assumptions: dict[str, cp_model.IntVar] | None = None) -> list[cp_model.LinearExprT]:
    victims = {e.claim for u in v.units for e in u.claims}
    for i, quota in enumerate(v.problem.quotas):
        left = quota.limit - existing_usage(v.problem, quota, skip=victims)
        keys = {c.key for c in v.claims if c.namespace == quota.namespace}
        kept = [(usage_of(v.problem, quota, e.results), v.kept[u.name])
                for u in v.units for e in u.claims if e.namespace == quota.namespace]  # fmt: skip
        if not keys and not kept:
            continue
        if quota.resource == "claims":
            expr = sum(v.placed[k] for k in keys)
        else:
            takes = [t for k in sorted(keys) for t in v.by_claim.get(k, [])]
            expr = sum(take_amount(v, quota, t) * v.take[t] for t in takes)
        if left >= sum(amount for amount, _ in kept):
            expr += sum(amount * x for amount, x in kept)  # what a kept victim holds counts; an evicted one frees it
        else:
            left = 0  # already over the limit with its victims: nothing new, and no eviction just for the quota
        constraint = v.model.add(expr <= left)
        if assumptions is not None:
            lit = v.model.new_bool_var(f"quota[{i}]")
            assumptions[f"quota:{i}"] = lit
            constraint.only_enforce_if(lit)
    return []
