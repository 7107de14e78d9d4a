"""``matchAttribute`` and ``distinctAttribute`` over the devices a claim's requests take."""

from __future__ import annotations

from collections import defaultdict

from ortools.sat.python import cp_model

from gpupolicy.solver.model.variables import TakeKey, Variables
from gpupolicy.solver.problem import AttributeValue, Claim, Constraint


def build(v: Variables, assumptions: dict[str, cp_model.IntVar] | None = None) -> list[cp_model.LinearExprT]:
    """Add every constraint; with ``assumptions``, each is enforced only by its own literal."""
    for claim in v.claims:
        for i, constraint in enumerate(claim.constraints):
            lit = None
            if assumptions is not None:
                lit = v.model.new_bool_var(f"constraint[{claim.key},#{i}]")
                assumptions[f"constraint:{claim.key}:{i}"] = lit
            _constraint(v, claim, i, constraint, lit)
    return []


def _constraint(v: Variables, claim: Claim, index: int, constraint: Constraint, lit: cp_model.IntVar | None) -> None:
    m = v.model
    guard = [] if lit is None else [lit.Not()]
    by_value: dict[tuple[str, AttributeValue], list[TakeKey]] = defaultdict(list)
    for t in v.by_claim.get(claim.key, []):
        if not constraint.applies(t[1]):
            continue
        attrs = v.problem.devices[t[2]].attributes
        if constraint.attribute not in attrs:
            m.add_bool_or([*guard, v.take[t].Not()])
            continue
        value = attrs[constraint.attribute]
        by_value[(type(value).__name__, value)].append(t)
    if constraint.distinct:
        for takes in by_value.values():
            if len(takes) > 1:
                c = m.add(sum(v.take[t] for t in takes) <= 1)
                if lit is not None:
                    c.only_enforce_if(lit)
        return
    if len(by_value) <= 1:
        return
    chosen = []
    for (_, value), takes in sorted(by_value.items(), key=lambda kv: str(kv[0])):
        pick = m.new_bool_var(f"match[{claim.key},#{index},{value}]")
        chosen.append(pick)
        for t in takes:
            m.add_bool_or([*guard, v.take[t].Not(), pick])
    m.add_at_most_one(chosen)
