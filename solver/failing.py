"""Selector run-time errors for the strategies that choose allocations themselves (``optimal``, ``best-fit``).

A device where a selector fails is never eligible (:mod:`gpupolicy.solver.compile`). The allocator can still meet
such a device while it checks an allocation these strategies chose, and then it fails with the error. Taking the
chosen devices first (how ``tests/e2e/allocoracle`` pins an allocation), it evaluates:

- every device of the node for a request in ``allocationMode: All`` (the compiler already keeps such a request
  off nodes with a failing device);
- for a request with ``firstAvailable``, every free device of the node for each subrequest before the chosen one,
  since those subrequests must fail first;
- a multi-allocatable device, whenever a request of the pod comes to it: such a device is never "in use", so any
  request of the pod may evaluate it.

:func:`without_failing` removes what would lead there: subrequests after one that fails on a device of a node
cannot be used on that node, and a multi-allocatable device on which any request of the pod fails cannot be used
by the pod. It is conservative: some of those allocations would pass.
"""

from __future__ import annotations

import dataclasses

from gpupolicy.solver.problem import Alternative, Claim, DeviceIndex, Exclusion, NodeName, Problem, Request

FIRST_AVAILABLE = "an earlier subrequest fails at run time on a device of the node"
SHARED = "a selector of the pod fails at run time on this multi-allocatable device"


def without_failing(problem: Problem) -> Problem:
    """``problem`` with the eligible devices cut as above; the same object when no selector fails anywhere."""
    if not any(a.errors for c in problem.claims for r in c.requests for a in r.alternatives):
        return problem
    gangs: dict[str, list[Claim]] = {}
    for claim in problem.claims:
        gangs.setdefault(claim.gang or claim.key, []).append(claim)
    shared_failing: dict[str, frozenset[DeviceIndex]] = {}
    for key, members in gangs.items():
        failing = {d for c in members for r in c.requests for a in r.alternatives for d in a.errors}
        shared_failing[key] = frozenset(d for d in failing if problem.devices[d].multi_allocatable)
    cache: dict[tuple[int, frozenset[DeviceIndex], frozenset[NodeName] | None], Alternative] = {}
    claims = []
    for claim in problem.claims:
        avoid = shared_failing[claim.gang or claim.key]
        requests = tuple(Request(r.name, _alternatives(problem, r, avoid, cache)) for r in claim.requests)
        claims.append(dataclasses.replace(claim, requests=requests))
    return dataclasses.replace(problem, claims=tuple(claims))


def _alternatives(
    problem: Problem,
    request: Request,
    avoid: frozenset[DeviceIndex],
    cache: dict[tuple[int, frozenset[DeviceIndex], frozenset[NodeName] | None], Alternative],
) -> tuple[Alternative, ...]:
    out = []
    blocked: set[NodeName] = set()
    everywhere = False  # an earlier subrequest fails on a device usable from every node
    for alternative in request.alternatives:
        nodes = None if everywhere else frozenset(blocked)
        key = (id(alternative), avoid, nodes)
        cut = cache.get(key)
        if cut is None:
            cut = _cut(problem, alternative, avoid, nodes)
            cache[key] = cut
        out.append(cut)
        for d in alternative.errors:
            device_nodes = problem.devices[d].nodes
            if device_nodes is None:
                everywhere = True
            else:
                blocked |= device_nodes
    return tuple(out)


def _cut(
    problem: Problem, alternative: Alternative, avoid: frozenset[DeviceIndex], blocked: frozenset[NodeName] | None
) -> Alternative:
    """``blocked`` None: every node is blocked."""
    kept, shared, first = [], 0, 0
    for d in alternative.eligible:
        nodes = problem.devices[d].nodes
        if blocked is None or (blocked and (nodes is None or nodes & blocked)):
            first += 1
        elif d in avoid:
            shared += 1
        else:
            kept.append(d)
    if len(kept) == len(alternative.eligible):
        return alternative
    exclusions = list(alternative.exclusions)
    for rule, count in ((FIRST_AVAILABLE, first), (SHARED, shared)):
        if count:
            exclusions.append(Exclusion(rule, "", count))
    return dataclasses.replace(alternative, eligible=tuple(kept), exclusions=tuple(exclusions))
