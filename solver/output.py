"""Placements → what the Kubernetes scheduler would write, and the solve report as data.

``allocation`` builds a claim's ``status.allocation`` (resource.k8s.io/v1): one result per device
(request, driver, pool, device, adminAccess, tolerations, shareID, consumedCapacity, binding
conditions copied from the device), the configuration (the classes' first, ``FromClass``, then the
claim's, ``FromClaim``, each limited to the requests it names) and the ``nodeSelector`` built as the
allocator builds it (a node-local device pins the claim to ``metadata.name In [node]``; node
selectors of the slices are merged; devices usable everywhere add nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpupolicy.policy.k8s.dump import to_wire
from gpupolicy.policy.quantity import Quantity
from gpupolicy.solver.compile import Compiled
from gpupolicy.solver.problem import DeviceResult, Toleration
from gpupolicy.solver.report import Summary, summarize
from gpupolicy.solver.result import Placement, Solution


def _quantity(n: int) -> str:
    binary = n >= 1024 and n % 1024 == 0
    return str(Quantity.from_int(n, binary=binary))


def _toleration(t: Toleration) -> dict[str, Any]:
    out: dict[str, Any] = {"operator": t.operator}
    if t.key:
        out["key"] = t.key
    if t.value:
        out["value"] = t.value
    if t.effect:
        out["effect"] = t.effect
    return out


def _result(compiled: Compiled, r: DeviceResult) -> dict[str, Any]:
    device = compiled.problem.devices[r.device]
    out: dict[str, Any] = {"request": r.request, "driver": device.driver, "pool": device.pool, "device": device.name}
    if r.admin_access:
        out["adminAccess"] = True
    if r.tolerations:
        out["tolerations"] = [_toleration(t) for t in r.tolerations]
    if r.share_id:
        out["shareID"] = r.share_id
    if r.consumed:
        prefix = f"{device.driver}/"
        out["consumedCapacity"] = {k.removeprefix(prefix): _quantity(v) for k, v in sorted(r.consumed.items())}
    conditions = compiled.table.pool_devices[r.device].device.binding_conditions
    if conditions:
        out["bindingConditions"] = list(conditions)
        failure = compiled.table.pool_devices[r.device].device.binding_failure_conditions
        if failure:
            out["bindingFailureConditions"] = list(failure)
    return out


def _config(compiled: Compiled, placement: Placement) -> list[dict[str, Any]]:
    claim = compiled.claims[placement.claim]
    problem_claim = compiled.problem.claim_index[placement.claim]
    used = {r.request for r in placement.results}
    out: list[dict[str, Any]] = []
    for request in problem_claim.requests:
        for alternative in request.alternatives:
            if alternative.name not in used:
                continue
            cls = compiled.classes.get(alternative.class_name)
            for class_config in cls.spec.config or () if cls is not None else ():
                entry: dict[str, Any] = {"source": "FromClass", "requests": [alternative.name]}
                if class_config.opaque is not None:
                    entry["opaque"] = to_wire(class_config.opaque)
                out.append(entry)
    devices = claim.spec.devices
    for config in devices.config or () if devices is not None else ():
        names = list(config.requests or ())
        if names and not any(n in used or any(u.split("/", 1)[0] == n for u in used) for n in names):
            continue
        entry = {"source": "FromClaim"}
        if names:
            entry["requests"] = names
        if config.opaque is not None:
            entry["opaque"] = to_wire(config.opaque)
        out.append(entry)
    return out


def node_selector(compiled: Compiled, placement: Placement) -> dict[str, Any] | None:
    fields: list[dict[str, Any]] = []
    expressions: list[dict[str, Any]] = []
    for r in placement.results:
        device = compiled.problem.devices[r.device]
        if device.node_name:
            values = [device.node_name]
            return {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": values}]}]
            }
        selector: Mapping[str, Any] | None = device.node_selector
        terms = list(selector.get("nodeSelectorTerms", [])) if selector else []
        if len(terms) == 1:
            for req in terms[0].get("matchFields", []) or []:
                if req not in fields:
                    fields.append(req)
            for req in terms[0].get("matchExpressions", []) or []:
                if req not in expressions:
                    expressions.append(req)
    if not fields and not expressions:
        return None
    term: dict[str, Any] = {}
    if expressions:
        term["matchExpressions"] = expressions
    if fields:
        term["matchFields"] = fields
    return {"nodeSelectorTerms": [term]}


def allocation(compiled: Compiled, placement: Placement) -> dict[str, Any]:
    devices: dict[str, Any] = {"results": [_result(compiled, r) for r in placement.results]}
    config = _config(compiled, placement)
    if config:
        devices["config"] = config
    out: dict[str, Any] = {"devices": devices}
    selector = node_selector(compiled, placement)
    if selector is not None:
        out["nodeSelector"] = selector
    return out


def claim_objects(compiled: Compiled, solution: Solution) -> list[dict[str, Any]]:
    """Every pending claim in v1 shape; placed ones with ``status.allocation``."""
    out = []
    for claim in compiled.problem.claims:
        if claim.moving:  # a moved claim's new place is under "moved"
            continue
        wire = to_wire(compiled.claims[claim.key])
        placement = solution.placements.get(claim.key)
        if placement is not None:
            wire["status"] = {"allocation": allocation(compiled, placement)}
        out.append(wire)
    return out


def document(compiled: Compiled, solution: Solution, compare: Solution | None = None) -> dict[str, Any]:
    """The ``-o json|yaml`` object: ``claims``, ``unplaced``, ``summary`` (and ``compare``)."""
    out: dict[str, Any] = {
        "claims": claim_objects(compiled, solution),
        "unplaced": unplaced(solution),
        "summary": summary_json(summarize(compiled.problem, solution)),
    }
    disruption = compiled.problem.disruption
    if disruption.preempt:
        out["preempted"] = preempted_json(solution)
    if disruption.defragment:
        out["moved"] = moved_json(compiled, solution)
    if compare is not None:
        out["compare"] = {
            compare.strategy: {
                "summary": summary_json(summarize(compiled.problem, compare)),
                "unplaced": unplaced(compare),
            }
        }
    return out


def preempted_json(solution: Solution) -> list[dict[str, Any]]:
    """The allocated claims the plan evicts for good: ``claim``, its ``priority``, and the claims it is evicted
    ``for``, sorted by claim."""
    return [{"claim": key, "priority": p.level, "for": list(p.for_)} for key, p in sorted(solution.preempted.items())]


def moved_json(compiled: Compiled, solution: Solution) -> list[dict[str, Any]]:
    """The allocated claims the plan moves: ``from`` and ``to`` as ``pool/device``, and ``for``."""
    devices = compiled.problem.devices

    def names(results: tuple[DeviceResult, ...]) -> list[str]:
        return sorted(f"{devices[r.device].pool}/{devices[r.device].name}" for r in results)

    out = []
    for key, moved in sorted(solution.moved.items()):
        placement = solution.placements.get(key)
        to = names(placement.results) if placement is not None else []
        out.append({"claim": key, "from": names(moved.before), "to": to, "for": list(moved.for_)})
    return out


def unplaced(solution: Solution) -> list[dict[str, Any]]:
    return [
        {"claim": key, "reasons": [r.to_json() for r in reasons]} for key, reasons in sorted(solution.unplaced.items())
    ]


def summary_json(s: Summary) -> dict[str, Any]:
    return {
        "strategy": s.strategy,
        "status": s.status,
        "provenOptimal": s.proven_optimal,
        "claims": s.claims,
        "placed": s.placed,
        "unplaced": s.claims - s.placed,
        "priorityPlaced": s.weight_placed,
        "priorityTotal": s.weight_total,
        "gpus": {"total": s.gpus, "fullyUsed": s.full, "partlyUsed": s.partial, "idle": s.idle},
        "fragmentation": round(s.fragmentation, 4),
    }
