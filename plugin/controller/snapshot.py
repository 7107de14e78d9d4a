"""What the controller reads in one pass, and the pending work in it.

A *unit* is what is placed all or nothing: one gated pod, or every pod carrying the same
``gpupolicy.dev/group`` label in a namespace. A unit is *ready* once each of its pods' claims exists (claims
from templates appear in ``pod.status.resourceClaimStatuses`` when kube-controller-manager has made them) and
the group has the size its ``gpupolicy.dev/group-size`` annotation asks for; *complete* when every claim is
allocated (a batch written before a restart: only the gates remain to be removed); *partial* when some claims
carry our allocation and others none (a batch cut short): those are released and the unit is solved again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from gpupolicy.plugin.controller.holders import BUDGETS, holds
from gpupolicy.plugin.kube import Api, Obj

GATE = "gpupolicy.dev/placement"
GROUP_LABEL = "gpupolicy.dev/group"
GROUP_SIZE = "gpupolicy.dev/group-size"
ALLOCATED_BY = "gpupolicy.dev/allocated-by"  # annotation on claims this controller allocated
HOLD = "gpupolicy.dev/hold"  # annotation on gated pods waiting for evicted pods' devices (holds.py)
FINALIZER = "resource.kubernetes.io/delete-protection"  # what the scheduler puts on a claim it allocates

ClaimRef = tuple[str, str]  # namespace, name


class State(StrEnum):
    WAITING = "waiting"
    READY = "ready"
    COMPLETE = "complete"
    PARTIAL = "partial"


@dataclass
class Unit:
    key: str  # "pod:<ns>/<name>" or "group:<ns>/<group>"
    pods: list[Obj]
    claims: dict[ClaimRef, str] = field(default_factory=dict)  # claim -> the pod (ns/name) whose gang it joins
    state: State = State.READY

    @property
    def namespace(self) -> str:
        return str(self.pods[0]["metadata"]["namespace"])


@dataclass
class Snapshot:
    pods: list[Obj]
    claims: dict[ClaimRef, Obj]
    slices: list[Obj]
    classes: list[Obj]
    nodes: list[Obj]
    holders: list[Obj] = field(default_factory=list)  # bound pods that use claims (only when reading for disruption)
    budgets: list[Obj] = field(default_factory=list)  # PodDisruptionBudgets (likewise)
    base: int | None = None  # the inventory's fingerprint sum, when a cache kept it (fingerprint.py)

    @classmethod
    def read(cls, api: Api, namespaces: Collection[str] = (), *, disruption: bool = False) -> Snapshot:
        """Everything; only the gated pods of ``namespaces`` (all when empty) are pending work. With ``disruption``
        (preemption or defragmentation on) also who holds the allocated claims: the bound pods, of every namespace,
        and the PodDisruptionBudgets (one more list; the controller then needs the right to list them)."""
        claims = {ref(c): c for c in api.list("resourceclaims")}
        every_pod = api.list("pods")
        pods = [p for p in every_pod if gated(p) and (not namespaces or ref(p)[0] in namespaces)]
        out = cls(pods, claims, api.list("resourceslices"), api.list("deviceclasses"), api.list("nodes"))
        if disruption:
            out.holders = [p for p in every_pod if holds(p)]
            out.budgets = api.list(BUDGETS)
        return out

    def allocated(self) -> list[Obj]:
        return [c for c in self.claims.values() if allocation(c) is not None]


def ref(obj: Obj) -> ClaimRef:
    meta = obj["metadata"]
    return str(meta.get("namespace", "default")), str(meta["name"])


def pod_key(pod: Obj) -> str:
    ns, name = ref(pod)
    return f"{ns}/{name}"


def gated(pod: Obj) -> bool:
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    return any(g.get("name") == GATE for g in gates) and not pod["metadata"].get("deletionTimestamp")


def allocation(claim: Obj) -> Obj | None:
    value = (claim.get("status") or {}).get("allocation")
    return value if value else None


def slim(obj: Obj, keep: Sequence[str], *, with_allocation: bool = False) -> Obj:
    """apiVersion, kind, the ``keep`` metadata and spec (plus ``status.allocation`` and ``status.reservedFor``, who
    holds it, when asked and allocated): what the loaders model, without managedFields and the like."""
    meta = obj.get("metadata") or {}
    out: Obj = {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", ""),
        "metadata": {k: meta[k] for k in keep if k in meta},
        "spec": obj.get("spec") or {},
    }
    if with_allocation and allocation(obj) is not None:
        out["status"] = {"allocation": allocation(obj)}
        reserved = (obj.get("status") or {}).get("reservedFor")
        if reserved:
            out["status"]["reservedFor"] = reserved
    return out


def node_wire(obj: Obj) -> Obj:
    """A Node reduced to its name and labels (what node selection reads)."""
    meta = obj.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": meta["name"], "labels": meta.get("labels") or {}}}


def ours(claim: Obj) -> bool:
    return ALLOCATED_BY in (claim["metadata"].get("annotations") or {})


def claim_names(pod: Obj) -> tuple[list[str], str]:
    """The names of the pod's claims, and what is still missing ("" when none)."""
    statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("resourceClaimStatuses") or []}
    names: list[str] = []
    for entry in (pod.get("spec") or {}).get("resourceClaims") or []:
        if entry.get("resourceClaimName"):
            names.append(str(entry["resourceClaimName"]))
        elif entry.get("resourceClaimTemplateName"):
            status = statuses.get(entry.get("name"))
            if status is None:
                return names, f"the claim for {entry.get('name')!r} is not created yet"
            if status.get("resourceClaimName"):
                names.append(str(status["resourceClaimName"]))
    return names, ""


def units(snapshot: Snapshot) -> list[Unit]:
    """Gated pods grouped into units, in creation order, each with its state."""
    by_key: dict[str, Unit] = {}
    for pod in sorted(snapshot.pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", pod_key(p))):
        ns = ref(pod)[0]
        group = (pod["metadata"].get("labels") or {}).get(GROUP_LABEL)
        key = f"group:{ns}/{group}" if group else f"pod:{pod_key(pod)}"
        by_key.setdefault(key, Unit(key, [])).pods.append(pod)
    for unit in by_key.values():
        _classify(unit, snapshot.claims)
    return list(by_key.values())


def _classify(unit: Unit, claims: dict[ClaimRef, Obj]) -> None:
    for pod in unit.pods:
        names, missing = claim_names(pod)
        if missing:
            unit.state = State.WAITING
            return
        for name in names:
            claim_ref = (ref(pod)[0], name)
            if claim_ref not in claims:
                unit.state = State.WAITING
                return
            unit.claims.setdefault(claim_ref, pod_key(pod))
    size = _group_size(unit.pods)
    if size > len(unit.pods):
        unit.state = State.WAITING
        return
    done = [allocation(claims[c]) is not None for c in unit.claims]
    if unit.claims and all(done):
        unit.state = State.COMPLETE
    elif any(done[i] and ours(claims[c]) for i, c in enumerate(unit.claims)):
        unit.state = State.PARTIAL


def _group_size(pods: Iterable[Obj]) -> int:
    sizes = [(p["metadata"].get("annotations") or {}).get(GROUP_SIZE, "") for p in pods]
    return max((int(s) for s in sizes if s.isdigit()), default=0)
