"""The live cluster state for ``gpupolicy solve --kubeconfig``: read, never written.

Lists ResourceSlices, DeviceClasses, Nodes, ResourceClaims, unscheduled Pods and the ResourceClaimTemplates they
still need through the one API client (:class:`~gpupolicy.plugin.kube.client.Client`), and turns them into the
same texts ``gpupolicy solve`` reads from files, so live objects and files follow one code path
(``gpupolicy.solver.inputs``):

- inventory: every slice and class, each Node's name and labels, every claim with ``status.allocation`` (fixed,
  with the ``status.reservedFor`` that says who holds it), and every bound Pod (a node, or a phase past Pending)
  that uses claims or belongs to a ``gpupolicy.dev/group``: who holds the allocations, which a solve that may
  preempt or defragment reads. Only the parts :mod:`gpupolicy.solver.holders` reads are kept
  (:mod:`gpupolicy.plugin.controller.holders`: labels, the ``gpupolicy.dev/`` annotations, owner references,
  deletion, node, phase);
- with ``disruption`` (``--preempt``/``--defragment``): every ``policy/v1`` PodDisruptionBudget too. They are listed
  only then, and a refusal is an error then: a plan that evicts pods must not ignore the budgets protecting them,
  while a plain solve never needs them (so a user without the right to list them can still solve);
- claims: every claim without an allocation (not being deleted), oldest first, and every unscheduled Pod that
  references claims (its claims form one gang). A template reference is resolved through
  ``status.resourceClaimStatuses`` to the claim kube-controller-manager made for it; when that claim does not exist
  yet, the template is read and the claim is generated as ``<pod>-<podClaimName>``, as for files.

Every failure (a bad kubeconfig, an unreachable server, a refused list) is a :class:`DiagnosticError` located at the
kubeconfig file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpupolicy.plugin.controller.holders import BUDGETS, bound_pod_wire, budget_wire, holds
from gpupolicy.plugin.controller.snapshot import allocation, node_wire, slim
from gpupolicy.plugin.kube import RESOURCES, ApiError, NotFound, Unreachable
from gpupolicy.policy.errors import DiagnosticError, Location

Obj = dict[str, Any]
Text = tuple[str, str]  # (content, filename), what gpupolicy.solver.inputs.read_inputs reads
Lister = Callable[[str], list[Obj]]

KEEP_META = ("name", "namespace", "uid", "labels", "annotations", "generation", "creationTimestamp")
TEMPLATES = "resourceclaimtemplates"
TIMEOUT_S = 30.0


@dataclass
class LiveState:
    inventory: list[Text] = field(default_factory=list)
    claims: list[Text] = field(default_factory=list)


def read_cluster(kubeconfig: str, namespace: str | None = None, *, disruption: bool = False) -> LiveState:
    """Everything ``gpupolicy solve`` needs from the cluster ``kubeconfig`` points at; with ``namespace``,
    only that namespace's pending claims and pods are placed (allocations everywhere still count); with
    ``disruption``, the PodDisruptionBudgets a plan that evicts pods must respect."""
    api = _connect(kubeconfig)
    try:
        return collect(lambda kind: _list(api, kind, kubeconfig), namespace, disruption=disruption)
    finally:
        api.close()


def _connect(kubeconfig: str) -> Any:
    from gpupolicy.plugin.kube import Client

    path = Path(kubeconfig)
    if not path.is_file():
        raise DiagnosticError.single(
            "kubeconfig_unreadable", f"cannot read {kubeconfig}: no such file", Location(kubeconfig)
        )
    try:
        return Client(path, timeout_s=TIMEOUT_S)
    except Exception as exc:  # the kubernetes config loader raises ConfigException, YAML and OS errors
        message = f"cannot load {kubeconfig}: {type(exc).__name__}: {exc}"
        raise DiagnosticError.single("kubeconfig_invalid", message, Location(kubeconfig)) from None


def _list(api: Any, kind: str, kubeconfig: str) -> list[Obj]:
    try:
        items: list[Obj] = api.list(kind)
    except ApiError as exc:
        code, detail = _describe(exc, kind)
        raise DiagnosticError.single(code, f"{detail} (kubeconfig {kubeconfig})", Location(kubeconfig)) from None
    return items


def _describe(exc: ApiError, kind: str) -> tuple[str, str]:
    text = exc.message
    if isinstance(exc, Unreachable):
        return "cluster_unreachable", f"cannot reach the API server to list {kind}: {text}"
    if isinstance(exc, NotFound):
        return "cluster_api_missing", f"the API server does not serve {kind} ({RESOURCES[kind].prefix}): {text}"
    return "cluster_api_error", f"listing {kind} failed: {text}"


def collect(list_kind: Lister, namespace: str | None = None, *, disruption: bool = False) -> LiveState:
    """The texts for ``read_inputs``, from any lister of wire objects (the API server, or a test's)."""
    out = LiveState()
    slices, classes, nodes = list_kind("resourceslices"), list_kind("deviceclasses"), list_kind("nodes")
    claims = list_kind("resourceclaims")
    allocated = [c for c in claims if allocation(c) is not None]

    def wanted_here(obj: Obj) -> bool:
        return namespace is None or _ns(obj) == namespace

    pending = sorted((c for c in claims if allocation(c) is None and not _deleting(c) and wanted_here(c)), key=_arrival)
    every_pod = list_kind("pods")
    pods = sorted((p for p in every_pod if _unscheduled(p) and wanted_here(p)), key=_arrival)
    bound = sorted((bound_pod_wire(p) for p in every_pod if holds(p)), key=_arrival)
    budgets = [budget_wire(b) for b in list_kind(BUDGETS)] if disruption else []
    wire_pods = [w for w in (_pod(p) for p in pods) if w["spec"]["resourceClaims"]]
    wanted = {(_ns(p), str(e["resourceClaimTemplateName"])) for p in wire_pods for e in _template_refs(p)}
    templates = [t for t in list_kind(TEMPLATES) if (_ns(t), t["metadata"]["name"]) in wanted] if wanted else []
    out.inventory = [
        _text("resourceslices", [slim(s, KEEP_META) for s in slices]),
        _text("deviceclasses", [slim(c, KEEP_META) for c in classes]),
        _text("nodes", [node_wire(n) for n in nodes]),
        _text("allocated resourceclaims", [slim(c, KEEP_META, with_allocation=True) for c in allocated]),
        _text("bound pods", bound),
    ]
    if disruption:
        out.inventory.append(_text(BUDGETS, budgets))
    out.claims = [
        _text("pending resourceclaims", [slim(c, KEEP_META) for c in pending]),
        _text("resourceclaimtemplates", [slim(t, KEEP_META) for t in templates]),
        _text("pods", wire_pods),
    ]
    return out


def _text(what: str, objs: Sequence[Obj]) -> Text:
    doc = {"apiVersion": "v1", "kind": "List", "items": list(objs)}
    return json.dumps(doc, indent=1, sort_keys=True), f"<cluster:{what}>"


def _pod(pod: Obj) -> Obj:
    """The pod with only its claim references; template references resolved to the claims made for them."""
    statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("resourceClaimStatuses") or []}
    refs: list[Obj] = []
    for entry in (pod.get("spec") or {}).get("resourceClaims") or []:
        status = statuses.get(entry.get("name"))
        if entry.get("resourceClaimTemplateName") and status is not None:
            if status.get("resourceClaimName"):  # made by kube-controller-manager; absent: no claim is needed
                refs.append({"name": entry["name"], "resourceClaimName": status["resourceClaimName"]})
        else:
            refs.append(dict(entry))
    meta = pod.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid") if k in meta},
        "spec": {"resourceClaims": refs},
    }


def _template_refs(pod: Obj) -> list[Obj]:
    return [e for e in pod["spec"]["resourceClaims"] if e.get("resourceClaimTemplateName")]


def _deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _unscheduled(pod: Obj) -> bool:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    return not spec.get("nodeName") and phase == "Pending" and not _deleting(pod) and bool(spec.get("resourceClaims"))


def _ns(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "default")


def _arrival(obj: Obj) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), _ns(obj), str(meta.get("name") or "")
