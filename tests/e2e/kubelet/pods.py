"""Pods with claims for the real-kubelet tests, and what to wait for."""

from __future__ import annotations

from typing import Any

from tests.e2e.kube import Kube, KubeError, Obj

CLASSES = {"whole": "e2e-gpu.gpupolicy.dev", "mig": "e2e-mig-1g.gpupolicy.dev", "shared": "e2e-shared.gpupolicy.dev"}
IMAGE = "registry.invalid/none:0"  # the CRI stand-in "pulls" anything and runs nothing


def claim_template(namespace: str, name: str, device_class: str, count: int = 1) -> Obj:
    request: dict[str, Any] = {"name": "gpu", "exactly": {"deviceClassName": device_class}}
    if count != 1:
        request["exactly"]["count"] = count
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"spec": {"devices": {"requests": [request]}}},
    }


def claim_pod(namespace: str, name: str, node: str | None, template: str, *, gated_by: str | None = None) -> Obj:
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,  # nothing here issues tokens for plain pods
        "terminationGracePeriodSeconds": 1,
        "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": template}],
        "containers": [{"name": "c", "image": IMAGE, "resources": {"claims": [{"name": "gpu"}]}}],
    }
    if node is not None:
        spec["nodeSelector"] = {"e2e-node": node}
    if gated_by is not None:
        spec["schedulingGates"] = [{"name": gated_by}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def phase(kube: Kube, namespace: str, name: str) -> str:
    return str(kube.get("v1", "Pod", name, namespace).get("status", {}).get("phase", ""))


def wait_running(kube: Kube, namespace: str, name: str, timeout_s: float = 60.0) -> Obj:
    def probe() -> Obj | None:
        pod = kube.get("v1", "Pod", name, namespace)
        return pod if pod.get("status", {}).get("phase") == "Running" else None

    try:
        result: Obj = kube.wait_for(f"pod {namespace}/{name} Running", probe, timeout_s=timeout_s)
    except AssertionError:
        pod = kube.get("v1", "Pod", name, namespace)
        raise AssertionError(f"pod {namespace}/{name} not Running: {pod.get('status')}") from None
    return result


def pod_claim(kube: Kube, namespace: str, pod: Obj) -> Obj:
    statuses = pod.get("status", {}).get("resourceClaimStatuses") or []
    return kube.get("resource.k8s.io/v1", "ResourceClaim", statuses[0]["resourceClaimName"], namespace)


def delete_and_wait_gone(kube: Kube, namespace: str, name: str, timeout_s: float = 60.0) -> None:
    kube.delete("v1", "Pod", name, namespace, graceful=True)

    def gone() -> bool:
        try:
            kube.get("v1", "Pod", name, namespace)
        except KubeError as exc:
            return exc.status == 404
        return False

    kube.wait_for(f"pod {namespace}/{name} gone", gone, timeout_s=timeout_s)
