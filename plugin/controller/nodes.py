"""The pod's own node constraints, which the solver does not see: ``spec.nodeSelector`` and
``spec.nodeName``. A claim placed on a node its pod cannot run on would leave the pod unschedulable. So every
alternative of a gated pod's claims loses the node-local devices of nodes the pod does not select. Devices
usable from every node stay. An alternative left with too few devices is explained by the solver like any
other (``selector_excludes_all``, ``no_single_node``). Required node affinity, Node taints and CPU/memory are not
checked (see docs/controller.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from plugin.controller.api import Obj
from solver.compile import Compiled
from solver.problem import Alternative, ClaimKey, DeviceIndex, Exclusion, Problem

Labels = Mapping[str, str]


def allowed_nodes(pod: Obj, nodes: Mapping[str, Labels]) -> frozenset[str] | None:
    """Nodes the pod may run on, or None when it does not restrict them."""
    spec = pod.get("spec") or {}
    selector: Labels = spec.get("nodeSelector") or {}
    pinned = spec.get("nodeName")
    if not selector and not pinned:
        return None
    return frozenset(
        name
        for name, labels in nodes.items()
        if all(labels.get(k) == v for k, v in selector.items()) and (not pinned or name == pinned)
    )


def restrict(compiled: Compiled, allowed: Mapping[ClaimKey, frozenset[str]]) -> None:
    """Drop from the claims' alternatives the devices only usable from nodes outside ``allowed[claim]``."""
    if not allowed:
        return
    problem = compiled.problem
    shared: dict[tuple[int, frozenset[str]], Alternative] = {}  # identical requests keep sharing one alternative
    claims = []
    for claim in problem.claims:
        nodes = allowed.get(claim.key)
        if nodes is None:
            claims.append(claim)
            continue
        requests = []
        for request in claim.requests:
            alternatives = []
            for alt in request.alternatives:
                key = (id(alt), nodes)
                if key not in shared:
                    keep = tuple(d for d in alt.eligible if _usable(problem, d, nodes))
                    dropped = len(alt.eligible) - len(keep)
                    rule = Exclusion(f"the pod's nodeSelector/nodeName ({len(nodes)} node(s) match)", "", dropped)
                    exclusions = (*alt.exclusions, rule) if dropped else alt.exclusions
                    shared[key] = dataclasses.replace(alt, eligible=keep, exclusions=exclusions)
                alternatives.append(shared[key])
            requests.append(dataclasses.replace(request, alternatives=tuple(alternatives)))
        claims.append(dataclasses.replace(claim, requests=tuple(requests)))
    compiled.problem = dataclasses.replace(problem, claims=tuple(claims))


def _usable(problem: Problem, d: DeviceIndex, nodes: frozenset[str]) -> bool:
    device = problem.devices[d]
    return device.nodes is None or bool(device.nodes & nodes)
