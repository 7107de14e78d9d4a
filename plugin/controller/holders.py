"""Who holds the allocated claims, as wire objects: the bound pods and the PodDisruptionBudgets that a solve which
may preempt or defragment reads (``gpupolicy solve --kubeconfig`` and the controller share these).

Each object is cut down to the parts :mod:`gpupolicy.solver.holders` reads, so a field a newer API server adds
is dropped here rather than refused by the strict PodDisruptionBudget model, and a pod's large annotations
(``last-applied-configuration``) are not carried: only the ``gpupolicy.dev/`` ones are.
"""

from __future__ import annotations

from gpupolicy.plugin.kube import Obj

BUDGETS = "poddisruptionbudgets"
RAN = ("Running", "Succeeded", "Failed")
GROUP_LABEL = "gpupolicy.dev/group"
POD_META = ("name", "namespace", "uid", "labels", "ownerReferences", "deletionTimestamp", "creationTimestamp")
BUDGET_SPEC = ("minAvailable", "maxUnavailable", "selector", "unhealthyPodEvictionPolicy")
BUDGET_STATUS = (
    "observedGeneration",
    "disruptedPods",
    "disruptionsAllowed",
    "currentHealthy",
    "desiredHealthy",
    "expectedPods",
    "conditions",
)


def holds(pod: Obj) -> bool:
    """Bound (a node, or a phase past Pending) and using claims or in a group: it may hold devices."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    labels = (pod.get("metadata") or {}).get("labels") or {}
    bound = bool(spec.get("nodeName")) or status.get("phase") in RAN
    return bound and (bool(spec.get("resourceClaims")) or GROUP_LABEL in labels)


def bound_pod_wire(pod: Obj) -> Obj:
    """The parts of a bound pod that eviction decisions read."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    keep = {k: meta[k] for k in POD_META if meta.get(k) is not None}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith("gpupolicy.dev/")}
    if annotations:
        keep["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": keep,
        "spec": {k: spec[k] for k in ("nodeName", "resourceClaims") if k in spec},
        "status": {"phase": status["phase"]} if status.get("phase") else {},
    }


def budget_wire(pdb: Obj) -> Obj:
    """A PodDisruptionBudget with the fields :mod:`gpupolicy.policy.k8s.pdb` models."""
    meta, spec, status = pdb.get("metadata") or {}, pdb.get("spec") or {}, pdb.get("status")
    out: Obj = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "generation") if k in meta},
        "spec": {k: spec[k] for k in BUDGET_SPEC if k in spec},
    }
    if status is not None:
        out["status"] = {k: status[k] for k in BUDGET_STATUS if k in status}
    return out
