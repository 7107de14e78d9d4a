"""The allocated claims of a problem: fixed :class:`Existing` allocations, the candidates a solve may give up
(preempt or move), and the weights of priority tiers over pending and candidate claims together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gpupolicy.policy.k8s.claim import ResourceClaim
from gpupolicy.solver.compile_devices import DeviceTable, qint
from gpupolicy.solver.problem import ClaimKey, DeviceIndex, DeviceResult, Disruption, Eviction, Existing, NodeName


def claim_key(claim: ResourceClaim) -> ClaimKey:
    return ClaimKey(f"{claim.metadata.namespace_or_default}/{claim.metadata.name or ''}")


def candidates(
    allocated: Sequence[ResourceClaim], evictions: Mapping[ClaimKey, Eviction], disruption: Disruption
) -> list[ResourceClaim]:
    """The allocated claims this solve may give up: any candidate when preempting, movable ones when defragmenting."""
    if not disruption.any:
        return []
    out = []
    for claim in allocated:
        eviction = evictions.get(claim_key(claim))
        if eviction is not None and (disruption.preempt or (disruption.defragment and eviction.movable)):
            out.append(claim)
    return out


def unallocated(claim: ResourceClaim) -> ResourceClaim:
    return claim.model_copy(update={"status": None})


def weights(tiers: Mapping[ClaimKey, tuple[str, int]]) -> dict[ClaimKey, int]:
    """Each priority tier is worth more than every claim of the lower tiers together (pending claims and the
    allocated claims a solve may give up)."""
    levels = sorted({level for _, level in tiers.values()})
    weight: dict[int, int] = {}
    below = 0
    for level in levels:
        weight[level] = below + 1
        below += weight[level] * sum(1 for _, v in tiers.values() if v == level)
    return {key: weight[level] for key, (_, level) in tiers.items()}


def existing(table: DeviceTable, allocated: Sequence[ResourceClaim]) -> list[Existing]:
    index = table.index()
    out = []
    for claim in allocated:
        allocation = claim.allocation
        if allocation is None:
            continue
        results = []
        for r in allocation.results:
            d = index.get((r.driver, r.pool, r.device))
            if d is None:
                continue
            consumed = {_qualify_name(r.driver, k): qint(v) for k, v in (r.consumed_capacity or {}).items()}
            results.append(DeviceResult(r.request, DeviceIndex(d), bool(r.admin_access), r.share_id, consumed))
        node = _node_of(allocation.node_selector.to_wire() if allocation.node_selector else None)
        out.append(Existing(claim_key(claim), claim.metadata.namespace_or_default, tuple(results), node))
    return out


def _qualify_name(driver: str, name: str) -> str:
    return name if "/" in name else f"{driver}/{name}"


def _node_of(selector: Mapping[str, Any] | None) -> NodeName | None:
    if not selector:
        return None
    for term in selector.get("nodeSelectorTerms", []) or []:
        for req in term.get("matchFields", []) or []:
            if req.get("key") == "metadata.name" and req.get("values"):
                return NodeName(req["values"][0])
    return None
