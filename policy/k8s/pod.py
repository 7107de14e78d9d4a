"""The parts of Pods (and workload pod templates) that DRA placement reads.

A Pod carries far more fields than modelled here; those are ignored. The parts that are read
(``spec.resourceClaims``, containers' ``resources.claims`` and requests, ``nodeName``,
``nodeSelector``, ``schedulingGates``, ``status.phase``) are checked strictly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gpupolicy.policy.k8s.base import Int, K8sModel, LenientModel, Str, WireQuantity
from gpupolicy.policy.k8s.meta import ObjectMeta
from gpupolicy.policy.quantity import Quantity


class PodResourceClaim(K8sModel):
    name: Str
    resource_claim_name: Str | None = None
    resource_claim_template_name: Str | None = None


class ResourceClaimRef(K8sModel):
    """``containers[].resources.claims[]``: a pod claim name and optionally one request of it."""

    name: Str
    request: Str | None = None


class ResourceRequirements(LenientModel):
    requests: dict[Str, WireQuantity] | None = None
    limits: dict[Str, WireQuantity] | None = None
    claims: list[ResourceClaimRef] | None = None


class Container(LenientModel):
    name: Str
    image: Str | None = None
    resources: ResourceRequirements | None = None


class SchedulingGate(K8sModel):
    name: Str


class PodSpec(LenientModel):
    containers: list[Container] = Field(default_factory=list)
    init_containers: list[Container] | None = None
    resource_claims: list[PodResourceClaim] | None = None
    node_name: Str | None = None
    node_selector: dict[Str, Str] | None = None
    scheduling_gates: list[SchedulingGate] | None = None
    scheduler_name: Str | None = None
    priority: Int | None = None

    def total_request(self, resource: str) -> Quantity:
        """Sum of the app containers' requests for ``resource``, or the largest init container's."""
        total = sum((_request(c, resource) for c in self.containers), Quantity(0))
        init = max((_request(c, resource) for c in self.init_containers or ()), default=Quantity(0))
        return max(total, init)


def _request(container: Container, resource: str) -> Quantity:
    if container.resources is None:
        return Quantity(0)
    requests = container.resources.requests or {}
    limits = container.resources.limits or {}
    return requests.get(resource) or limits.get(resource) or Quantity(0)


class PodStatus(LenientModel):
    """Only the phase: whether the pod runs (or ran), which makes it a holder of claims, not a pending pod."""

    phase: Str | None = None


class Pod(LenientModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Pod"] = "Pod"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodSpec
    status: PodStatus | None = None


class PodTemplateSpec(LenientModel):
    metadata: ObjectMeta | None = None
    spec: PodSpec


class WorkloadSpec(LenientModel):
    replicas: Int | None = None
    parallelism: Int | None = None
    completions: Int | None = None
    template: PodTemplateSpec


WorkloadKind = Literal["Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job"]
WORKLOAD_API_VERSIONS: dict[str, str] = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
}


class Workload(LenientModel):
    """A Deployment, StatefulSet, ReplicaSet, DaemonSet or Job: only its pod template and size."""

    api_version: Literal["apps/v1", "batch/v1"]
    kind: WorkloadKind
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: WorkloadSpec

    @property
    def pod_count(self) -> int:
        """How many pods the workload asks for (DaemonSet: 1 per node, reported as 1)."""
        if self.kind == "Job":
            return self.spec.parallelism if self.spec.parallelism is not None else 1
        return self.spec.replicas if self.spec.replicas is not None else 1
