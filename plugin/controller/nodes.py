"""The pod's own node constraints, which the solver does not see: ``spec.nodeName``, ``spec.nodeSelector``,
required node affinity, and the Node's taints (``NoSchedule``/``NoExecute``, and ``spec.unschedulable``) against
the pod's tolerations. A claim placed on a node its pod cannot run on would leave the pod unschedulable. So every
alternative of a gated pod's claims loses the node-local devices of nodes the pod cannot use. Devices usable from
every node stay. An alternative left with too few devices is explained by the solver like any other
(``selector_excludes_all``, ``no_single_node``). CPU, memory and pod (anti-)affinity are not checked (see
docs/controller.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from gpupolicy.plugin.kube import Obj
from gpupolicy.policy.k8s.meta import NodeSelector
from gpupolicy.policy.k8s.nodeselect import node_selector_matches
from gpupolicy.solver.compile import Compiled
from gpupolicy.solver.narrow import Rule, narrow
from gpupolicy.solver.problem import Claim, ClaimKey, DeviceIndex, Problem

Labels = Mapping[str, str]
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")
UNSCHEDULABLE = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def _required_affinity(spec: Mapping[str, Any]) -> NodeSelector | None:
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not affinity:
        return None
    try:
        return NodeSelector.model_validate(affinity)
    except ValidationError:
        return None  # the API server would not have admitted such a pod; do not guess


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' toleration match: effect (empty = all), key (empty with Exists = all), Equal compares values."""
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    operator = toleration.get("operator") or "Equal"
    if not toleration.get("key"):
        return operator == "Exists"
    if toleration.get("key") != taint.get("key"):
        return False
    return operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or "")


def blocking_taints(node: Obj) -> list[Mapping[str, Any]]:
    spec = node.get("spec") or {}
    taints = [t for t in spec.get("taints") or () if t.get("effect") in BLOCKING_EFFECTS]
    return [*taints, UNSCHEDULABLE] if spec.get("unschedulable") else taints


def _runs_on(name: str, node: Obj, spec: Mapping[str, Any], affinity: NodeSelector | None) -> bool:
    labels: Labels = (node.get("metadata") or {}).get("labels") or {}
    selector: Labels = spec.get("nodeSelector") or {}
    if spec.get("nodeName") and spec["nodeName"] != name:
        return False
    if not all(labels.get(k) == v for k, v in selector.items()):
        return False
    if affinity is not None and not node_selector_matches(affinity, name, labels):
        return False
    tolerations: Sequence[Mapping[str, Any]] = spec.get("tolerations") or ()
    return all(any(_tolerates(t, taint) for t in tolerations) for taint in blocking_taints(node))


def allowed_nodes(pod: Obj, nodes: Mapping[str, Obj]) -> frozenset[str] | None:
    """Nodes (name -> Node object) the pod may run on, or None when nothing restricts it."""
    spec = pod.get("spec") or {}
    affinity = _required_affinity(spec)
    restricted = spec.get("nodeSelector") or spec.get("nodeName") or affinity is not None
    if not restricted and not any(blocking_taints(node) for node in nodes.values()):
        return None
    return frozenset(name for name, node in nodes.items() if _runs_on(name, node, spec, affinity))


def restrict(compiled: Compiled, allowed: Mapping[ClaimKey, frozenset[str]]) -> None:
    """Drop from the claims' alternatives the devices only usable from nodes outside ``allowed[claim]``."""
    if not allowed:
        return
    problem = compiled.problem

    def rule(claim: Claim) -> Rule | None:
        nodes = allowed.get(claim.key)
        if nodes is None:
            return None
        return nodes, f"the pod's node constraints ({len(nodes)} node(s) fit)", lambda d: _usable(problem, d, nodes)

    compiled.problem = narrow(problem, rule)


def _usable(problem: Problem, d: DeviceIndex, nodes: frozenset[str]) -> bool:
    device = problem.devices[d]
    return device.nodes is None or bool(device.nodes & nodes)
