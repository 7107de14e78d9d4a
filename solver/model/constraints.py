"""``matchAttribute`` and ``distinctAttribute`` over the devices a claim's requests take."""

from __future__ import annotations

from collections import defaultdict

from ortools.sat.python import cp_model

from solver.model.variables import TakeKey, Variables
from solver.problem import AttributeValue, Claim, Constraint


def build(v: Variables) -> list[cp_model.LinearExprT]:
    for claim in v.claims:
        for i, constraint in enumerate(claim.constraints):
            _constraint(v, claim, i, constraint)
    return []


def _constraint(v: Variables, claim: Claim, index: int, constraint: Constraint) -> None:
    m = v.model
    by_value: dict[tuple[str, AttributeValue], list[TakeKey]] = defaultdict(list)
    for t in v.take:
        if t[0] != claim.key or not constraint.applies(t[1]):
            continue
        attrs = v.problem.devices[t[2]].attributes
        if constraint.attribute not in attrs:
            m.add(v.take[t] == 0)
            continue
        value = attrs[constraint.attribute]
        by_value[(type(value).__name__, value)].append(t)
    if constraint.distinct:
        for takes in by_value.values():
            if len(takes) > 1:
                m.add(sum(v.take[t] for t in takes) <= 1)
        return
    if len(by_value) <= 1:
        return
    chosen = []
    for (_, value), takes in sorted(by_value.items(), key=lambda kv: str(kv[0])):
        pick = m.new_bool_var(f"match[{claim.key},#{index},{value}]")
        chosen.append(pick)
        for t in takes:
            m.add_implication(v.take[t], pick)
    m.add_at_most_one(chosen)
