"""Narrowing a compiled problem after the fact: some claims lose some of their eligible devices.

The controller narrows what the compiler found eligible for reasons the compiler does not know: the pod's node
constraints (``plugin/controller/nodes.py``) and devices held for a preempting unit (``plugin/controller/holds.py``).
Every device removed is recorded as an :class:`Exclusion` of the alternative, so explanations name the rule.
Identical requests keep sharing one alternative (per narrowing), as the compiler made them share one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable

from gpupolicy.solver.problem import Alternative, Claim, DeviceIndex, Exclusion, Problem

Keep = Callable[[DeviceIndex], bool]
Rule = tuple[Hashable, str, Keep]  # (what makes two narrowings the same, the rule's words, which devices stay)


def narrow(problem: Problem, rule_for: Callable[[Claim], Rule | None]) -> Problem:
    """``problem`` with each claim's alternatives keeping only the devices ``rule_for(claim)`` keeps (a claim whose
    rule is None is left as it is)."""
    shared: dict[tuple[int, Hashable], Alternative] = {}
    claims = []
    for claim in problem.claims:
        rule = rule_for(claim)
        if rule is None:
            claims.append(claim)
            continue
        same, words, keep = rule
        requests = []
        for request in claim.requests:
            alternatives = []
            for alt in request.alternatives:
                key = (id(alt), same)
                if key not in shared:
                    left = tuple(d for d in alt.eligible if keep(d))
                    dropped = len(alt.eligible) - len(left)
                    exclusions = (*alt.exclusions, Exclusion(words, "", dropped)) if dropped else alt.exclusions
                    shared[key] = dataclasses.replace(alt, eligible=left, exclusions=exclusions)
                alternatives.append(shared[key])
            requests.append(dataclasses.replace(request, alternatives=tuple(alternatives)))
        claims.append(dataclasses.replace(claim, requests=tuple(requests)))
    return dataclasses.replace(problem, claims=tuple(claims))
