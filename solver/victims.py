"""The allocated claims a solve may give up, grouped into the units that go together.

A *victim unit* is the set of allocated claims whose pods are evicted together (``Eviction.unit``). It is
*preemptable* when the solve preempts and its level (the highest policy priority of its claims) is strictly
lower than the level of some pending claim: no claim is ever evicted for one of equal or lower priority. It is
*movable* when the solve defragments and every claim of it is movable: it may then be evicted and placed again
(its claims' replacements are the problem's ``moving`` claims, with the same keys). A unit that is neither stays
where it is, like any other allocation. Read by the model, the post-pass and the verifier alike.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gpupolicy.solver.problem import ClaimKey, Existing, Problem


@dataclass(frozen=True)
class VictimUnit:
    name: str
    claims: tuple[Existing, ...]
    pods: tuple[str, ...]
    level: int
    weight: int  # what keeping it is worth: the sum of its claims' weights
    budgets: Counter[str] = field(default_factory=Counter)  # budget -> pods of the unit it counts
    preemptable: bool = False
    movable: bool = False

    @property
    def keys(self) -> tuple[ClaimKey, ...]:
        return tuple(e.claim for e in self.claims)


def top_level(problem: Problem) -> int | None:
    """The highest level of a pending claim that can be placed at all (None: no such claim)."""
    levels = [c.level for c in problem.claims if not c.moving and c.error is None]
    return max(levels) if levels else None


def victim_units(problem: Problem) -> tuple[VictimUnit, ...]:
    if not problem.disruption.any:
        return ()
    moving = {c.key for c in problem.claims if c.moving}
    top = top_level(problem)
    grouped: dict[str, list[Existing]] = {}
    for existing in problem.existing:
        if existing.eviction is not None:
            grouped.setdefault(existing.eviction.unit, []).append(existing)
    out = []
    for name, claims in sorted(grouped.items()):
        eviction = claims[0].eviction
        assert eviction is not None
        level = max(e.level for e in claims)
        preemptable = problem.disruption.preempt and top is not None and level < top
        movable = problem.disruption.defragment and all(
            e.eviction is not None and e.eviction.movable and e.claim in moving for e in claims
        )
        if not (preemptable or movable):
            continue
        out.append(
            VictimUnit(
                name,
                tuple(claims),
                tuple(sorted({p for e in claims if e.eviction for p in e.eviction.pods})),
                level,
                sum(e.weight for e in claims),
                Counter(eviction.budgets),
                preemptable,
                movable,
            )
        )
    return tuple(out)


def victim_keys(problem: Problem) -> frozenset[ClaimKey]:
    return frozenset(k for u in victim_units(problem) for k in u.keys)
