"""ResourceClaim and ResourceClaimTemplate (resource.k8s.io/v1): spec and status."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gpupolicy.policy.k8s.base import Bool, Int, K8sModel, Str, Time, WireQuantity
from gpupolicy.policy.k8s.common import DeviceSelector, DeviceToleration, OpaqueDeviceConfiguration
from gpupolicy.policy.k8s.ids import ClaimName, ClaimRef, RequestName
from gpupolicy.policy.k8s.meta import Condition, NodeSelector, ObjectMeta

AllocationMode = Literal["ExactCount", "All"]


class CapacityRequirements(K8sModel):
    requests: dict[Str, WireQuantity] | None = None


class RequestFields(K8sModel):
    """What an exact request and a subrequest share."""

    device_class_name: Str
    selectors: list[DeviceSelector] | None = None
    allocation_mode: Literal["ExactCount", "All", ""] | None = None
    """Unset or empty means ``ExactCount`` (the API server's default)."""
    count: Int | None = None
    tolerations: list[DeviceToleration] | None = None
    capacity: CapacityRequirements | None = None

    @property
    def mode(self) -> AllocationMode:
        return self.allocation_mode or "ExactCount"

    @property
    def effective_count(self) -> int:
        """Devices wanted in ExactCount mode (unset or 0 means 1, as the API server defaults it); 0 in All mode."""
        if self.mode == "All":
            return 0
        return self.count or 1

    @property
    def cel_expressions(self) -> list[str]:
        return [s.cel.expression for s in self.selectors or () if s.cel is not None]


class ExactDeviceRequest(RequestFields):
    admin_access: Bool | None = None


class DeviceSubRequest(RequestFields):
    name: Str


class DeviceRequest(K8sModel):
    name: Str
    exactly: ExactDeviceRequest | None = None
    first_available: list[DeviceSubRequest] | None = None

    def alternatives(self) -> list[tuple[RequestName, RequestFields]]:
        """The ways to satisfy this request, in order: ``(name, fields)`` with ``name`` as results use it."""
        if self.first_available:
            return [(RequestName(f"{self.name}/{sub.name}"), sub) for sub in self.first_available]
        if self.exactly is not None:
            return [(RequestName(self.name), self.exactly)]
        return []


class DeviceConstraint(K8sModel):
    requests: list[Str] | None = None
    match_attribute: Str | None = None
    distinct_attribute: Str | None = None


class DeviceClaimConfiguration(K8sModel):
    requests: list[Str] | None = None
    opaque: OpaqueDeviceConfiguration | None = None


class DeviceClaim(K8sModel):
    requests: list[DeviceRequest] | None = None
    constraints: list[DeviceConstraint] | None = None
    config: list[DeviceClaimConfiguration] | None = None


class ResourceClaimSpec(K8sModel):
    devices: DeviceClaim | None = None

    @property
    def requests(self) -> list[DeviceRequest]:
        return list(self.devices.requests or ()) if self.devices else []


class ResourceClaimConsumerReference(K8sModel):
    api_group: Str | None = None
    resource: Str
    name: Str
    uid: Str


class DeviceRequestAllocationResult(K8sModel):
    request: Str
    driver: Str
    pool: Str
    device: Str
    admin_access: Bool | None = None
    tolerations: list[DeviceToleration] | None = None
    binding_conditions: list[Str] | None = None
    binding_failure_conditions: list[Str] | None = None
    share_id: Str | None = Field(None, alias="shareID")
    consumed_capacity: dict[Str, WireQuantity] | None = None


class DeviceAllocationConfiguration(K8sModel):
    source: Literal["FromClass", "FromClaim"]
    requests: list[Str] | None = None
    opaque: OpaqueDeviceConfiguration | None = None


class DeviceAllocationResult(K8sModel):
    results: list[DeviceRequestAllocationResult] | None = None
    config: list[DeviceAllocationConfiguration] | None = None


class AllocationResult(K8sModel):
    devices: DeviceAllocationResult | None = None
    node_selector: NodeSelector | None = None
    allocation_timestamp: Time | None = None

    @property
    def results(self) -> list[DeviceRequestAllocationResult]:
        return list(self.devices.results or ()) if self.devices else []


class NetworkDeviceData(K8sModel):
    interface_name: Str | None = None
    ips: list[Str] | None = None
    hardware_address: Str | None = None


class AllocatedDeviceStatus(K8sModel):
    driver: Str
    pool: Str
    device: Str
    share_id: Str | None = Field(None, alias="shareID")
    conditions: list[Condition] | None = None
    data: Any = None
    network_data: NetworkDeviceData | None = None


class ResourceClaimStatus(K8sModel):
    allocation: AllocationResult | None = None
    reserved_for: list[ResourceClaimConsumerReference] | None = None
    devices: list[AllocatedDeviceStatus] | None = None


class ResourceClaim(K8sModel):
    api_version: Literal["resource.k8s.io/v1"] = "resource.k8s.io/v1"
    kind: Literal["ResourceClaim"] = "ResourceClaim"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ResourceClaimSpec
    status: ResourceClaimStatus | None = None

    @property
    def ref(self) -> ClaimRef:
        return ClaimRef(self.metadata.namespace_or_default, ClaimName(self.metadata.name or ""))

    @property
    def allocation(self) -> AllocationResult | None:
        return self.status.allocation if self.status else None


class ResourceClaimTemplateSpec(K8sModel):
    metadata: ObjectMeta | None = None
    spec: ResourceClaimSpec


class ResourceClaimTemplate(K8sModel):
    api_version: Literal["resource.k8s.io/v1"] = "resource.k8s.io/v1"
    kind: Literal["ResourceClaimTemplate"] = "ResourceClaimTemplate"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ResourceClaimTemplateSpec

    @property
    def ref(self) -> ClaimRef:
        return ClaimRef(self.metadata.namespace_or_default, ClaimName(self.metadata.name or ""))
