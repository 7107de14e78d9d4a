"""Cross-object checks: unknown device classes, claims and templates; objects defined twice."""

from __future__ import annotations

from gpupolicy.policy.k8s.load import load_text
from gpupolicy.policy.k8s.references import check_references

from .conftest import read_data

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: ml}
spec:
  containers: [{name: c}]
  resourceClaims:
  - {name: a, resourceClaimName: train}
  - {name: b, resourceClaimTemplateName: one-gpu}
  - {name: c, resourceClaimName: missing}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    spec:
      containers: [{name: c}]
      resourceClaims: [{name: a, resourceClaimTemplateName: one-gpu}]
"""


def _codes(text: str, **kw: object) -> list[str]:
    result = load_text(text, "all.yaml")
    assert result.ok, result.diagnostics
    return [f"{d.code} {d.location.path}" for d in check_references(result, **kw)]  # type: ignore[arg-type]


def test_fixture_references() -> None:
    # The fixture's claim asks for nic.example.com, which no file defines.
    assert _codes(read_data("valid_v1.yaml")) == [
        "unknown_reference spec.devices.requests[2].exactly.deviceClassName",
    ]
    assert _codes(read_data("valid_v1.yaml"), device_classes=["nic.example.com"]) == []


def test_pod_and_workload_references_and_duplicates() -> None:
    text = read_data("valid_v1.yaml") + "---\n" + PODS + "---\n" + PODS.split("---")[0]
    got = _codes(text, device_classes=["nic.example.com"])
    assert got == [
        "unknown_reference spec.resourceClaims[2]",
        "unknown_reference spec.template.spec.resourceClaims[0]",  # the template is in namespace ml
        "duplicate_name metadata.name",  # the Pod, a second time
        "unknown_reference spec.resourceClaims[2]",
    ]
