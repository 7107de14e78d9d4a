"""ResourceSlice (resource.k8s.io/v1): a driver's published devices and shared counters."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gpupolicy.policy.k8s.base import Bool, Int, K8sModel, Str, WireQuantity
from gpupolicy.policy.k8s.common import DeviceTaint
from gpupolicy.policy.k8s.ids import DriverName, PoolID, PoolName
from gpupolicy.policy.k8s.meta import NodeSelector, ObjectMeta
from gpupolicy.policy.quantity import Quantity
from gpupolicy.policy.semver import Semver, SemverField


class ResourcePool(K8sModel):
    name: Str
    generation: Int
    resource_slice_count: Int


class DeviceAttribute(K8sModel):
    """Exactly one of the four values is set."""

    int_value: Int | None = Field(None, alias="int")
    bool_value: Bool | None = Field(None, alias="bool")
    string_value: Str | None = Field(None, alias="string")
    version_value: SemverField | None = Field(None, alias="version")

    @property
    def value(self) -> int | bool | str | Semver | None:
        for v in (self.int_value, self.bool_value, self.string_value, self.version_value):
            if v is not None:
                return v
        return None


class CapacityRequestPolicyRange(K8sModel):
    min: WireQuantity | None = None
    max: WireQuantity | None = None
    step: WireQuantity | None = None


class CapacityRequestPolicy(K8sModel):
    default: WireQuantity | None = None
    valid_values: list[WireQuantity] | None = None
    valid_range: CapacityRequestPolicyRange | None = None


class DeviceCapacity(K8sModel):
    value: WireQuantity = Quantity.parse("0")
    """Optional on the wire (the API server accepts a capacity without a value as zero)."""
    request_policy: CapacityRequestPolicy | None = None


class Counter(K8sModel):
    value: WireQuantity = Quantity.parse("0")
    """Optional on the wire, as for a capacity."""


class CounterSet(K8sModel):
    name: Str
    counters: dict[Str, Counter] | None = None


class DeviceCounterConsumption(K8sModel):
    counter_set: Str
    counters: dict[Str, Counter] | None = None


class Device(K8sModel):
    name: Str
    attributes: dict[Str, DeviceAttribute] | None = None
    capacity: dict[Str, DeviceCapacity] | None = None
    consumes_counters: list[DeviceCounterConsumption] | None = None
    node_name: Str | None = None
    node_selector: NodeSelector | None = None
    all_nodes: Bool | None = None
    taints: list[DeviceTaint] | None = None
    binds_to_node: Bool | None = None
    binding_conditions: list[Str] | None = None
    binding_failure_conditions: list[Str] | None = None
    allow_multiple_allocations: Bool | None = None

    def counters_consumed(self) -> dict[str, dict[str, Quantity]]:
        """``{counterSet: {counter: amount}}``."""
        return {
            c.counter_set: {name: counter.value for name, counter in (c.counters or {}).items()}
            for c in self.consumes_counters or ()
        }


class ResourceSliceSpec(K8sModel):
    driver: Str
    pool: ResourcePool
    node_name: Str | None = None
    node_selector: NodeSelector | None = None
    all_nodes: Bool | None = None
    per_device_node_selection: Bool | None = None
    devices: list[Device] | None = None
    shared_counters: list[CounterSet] | None = None


class ResourceSlice(K8sModel):
    api_version: Literal["resource.k8s.io/v1"] = "resource.k8s.io/v1"
    kind: Literal["ResourceSlice"] = "ResourceSlice"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ResourceSliceSpec

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def driver(self) -> DriverName:
        return DriverName(self.spec.driver)

    @property
    def pool_id(self) -> PoolID:
        return PoolID(DriverName(self.spec.driver), PoolName(self.spec.pool.name))

    @property
    def devices(self) -> list[Device]:
        return list(self.spec.devices or ())
