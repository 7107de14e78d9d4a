"""Views of published devices for selectors and the solver: devices as CEL sees them, and pools.

``device_view`` gives the ``device`` CEL variable. ``gather_pools`` groups slices into pools as
the Kubernetes structured allocator does: by (driver, pool name), keeping only the highest
generation, flagging a pool *incomplete* when fewer than ``resourceSliceCount`` slices of that
generation are present and *invalid* when device names repeat across its slices. It also marks a
pool invalid when shared counters are inconsistent (a counter set defined twice, or a device
consuming a counter set or counter the pool does not define), which the allocator reports as an
error when it meets such a device.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gpupolicy.policy.device import AttributeValue, DeviceView, split_qualified
from gpupolicy.policy.k8s.common import DeviceTaint
from gpupolicy.policy.k8s.ids import DeviceID, DeviceName, DriverName, NodeName, PoolID, PoolName
from gpupolicy.policy.k8s.meta import NodeSelector
from gpupolicy.policy.k8s.nodeselect import node_selector_matches
from gpupolicy.policy.k8s.slice import CapacityRequestPolicy, Device, ResourceSlice
from gpupolicy.policy.quantity import Quantity

CounterAmounts = Mapping[str, Mapping[str, Quantity]]
"""``{counterSet: {counter: amount}}``."""


def device_view(slc: ResourceSlice, device: Device) -> DeviceView:
    """The ``device`` CEL variable: attributes and capacity keyed by domain, then by ID."""
    driver = slc.spec.driver
    attributes: dict[str, dict[str, AttributeValue]] = {}
    for name, attr in (device.attributes or {}).items():
        value = attr.value
        if value is not None:
            domain, ident = split_qualified(name, driver)
            attributes.setdefault(domain, {})[ident] = value
    capacity: dict[str, dict[str, Quantity]] = {}
    for name, cap in (device.capacity or {}).items():
        domain, ident = split_qualified(name, driver)
        capacity.setdefault(domain, {})[ident] = cap.value
    return DeviceView(
        driver=driver,
        attributes=attributes,
        capacity=capacity,
        allow_multiple_allocations=device.allow_multiple_allocations is True,
    )


@dataclass(frozen=True)
class CapacityView:
    value: Quantity
    request_policy: CapacityRequestPolicy | None = None


@dataclass(frozen=True, eq=False)
class PoolDevice:
    """One device of a pool with everything allocation needs, node selection resolved."""

    id: DeviceID
    slice: ResourceSlice
    device: Device
    view: DeviceView
    node_name: NodeName | None
    node_selector: NodeSelector | None
    all_nodes: bool
    taints: tuple[DeviceTaint, ...]
    counters: CounterAmounts
    capacity: Mapping[str, CapacityView]
    """Keyed by fully qualified name (``<driver>/memory`` for an unqualified ``memory``)."""

    @property
    def name(self) -> DeviceName:
        return self.id.device

    @property
    def allow_multiple_allocations(self) -> bool:
        return self.device.allow_multiple_allocations is True

    @property
    def binds_to_node(self) -> bool:
        return self.device.binds_to_node is True

    def available_on(self, node_name: str, labels: Mapping[str, str]) -> bool:
        """Whether a pod on this node may use the device."""
        if self.all_nodes:
            return True
        if self.node_name is not None:
            return self.node_name == node_name
        if self.node_selector is not None:
            return node_selector_matches(self.node_selector, node_name, labels)
        return False


@dataclass
class Pool:
    id: PoolID
    generation: int
    resource_slice_count: int
    slices: list[ResourceSlice] = field(default_factory=list)
    devices: list[PoolDevice] = field(default_factory=list)
    counter_sets: dict[str, dict[str, Quantity]] = field(default_factory=dict)
    incomplete: bool = False
    invalid: bool = False
    invalid_reason: str = ""

    @property
    def usable(self) -> bool:
        """Neither incomplete nor invalid (the allocator still uses incomplete pools, except for mode All)."""
        return not self.incomplete and not self.invalid


def pool_device(slc: ResourceSlice, device: Device) -> PoolDevice:
    spec = slc.spec
    per_device = spec.per_device_node_selection is True
    src = device if per_device else spec
    driver = spec.driver
    capacity = {
        "/".join(split_qualified(name, driver)): CapacityView(cap.value, cap.request_policy)
        for name, cap in (device.capacity or {}).items()
    }
    return PoolDevice(
        id=DeviceID(DriverName(driver), PoolName(spec.pool.name), DeviceName(device.name)),
        slice=slc,
        device=device,
        view=device_view(slc, device),
        node_name=NodeName(src.node_name) if src.node_name else None,
        node_selector=src.node_selector,
        all_nodes=src.all_nodes is True,
        taints=tuple(device.taints or ()),
        counters=device.counters_consumed(),
        capacity=capacity,
    )


def gather_pools(slices: Iterable[ResourceSlice]) -> list[Pool]:
    """Group slices into pools, sorted by driver then pool name; slices by name, devices in slice order."""
    newest: dict[PoolID, list[ResourceSlice]] = {}
    for slc in slices:
        current = newest.setdefault(slc.pool_id, [])
        if current and slc.spec.pool.generation < current[0].spec.pool.generation:
            continue
        if current and slc.spec.pool.generation > current[0].spec.pool.generation:
            current.clear()
        current.append(slc)
    return [_make_pool(pid, sorted(group, key=lambda s: s.name)) for pid, group in sorted(newest.items())]


def _make_pool(pid: PoolID, slices: list[ResourceSlice]) -> Pool:
    first = slices[0].spec.pool
    pool = Pool(pid, first.generation, first.resource_slice_count, slices)
    pool.incomplete = len(slices) != first.resource_slice_count
    problems: list[str] = []
    for slc in slices:
        for counter_set in slc.spec.shared_counters or ():
            if counter_set.name in pool.counter_sets:
                problems.append(f"duplicate counter set {counter_set.name}")
            pool.counter_sets[counter_set.name] = {k: c.value for k, c in (counter_set.counters or {}).items()}
    seen: set[str] = set()
    for slc in slices:
        for device in slc.devices:
            if device.name in seen:
                problems.append(f"duplicate device name {device.name}")
            seen.add(device.name)
            pool.devices.append(pool_device(slc, device))
    if not pool.incomplete:
        problems += _counter_problems(pool)
    pool.invalid = bool(problems)
    pool.invalid_reason = problems[0] if problems else ""
    return pool


def _counter_problems(pool: Pool) -> list[str]:
    problems: list[str] = []
    for dev in pool.devices:
        for set_name, amounts in dev.counters.items():
            available = pool.counter_sets.get(set_name)
            if available is None:
                problems.append(f"device {dev.name} consumes counters of unknown counter set {set_name}")
                continue
            problems += [
                f"device {dev.name} consumes unknown counter {name} of counter set {set_name}"
                for name in amounts
                if name not in available
            ]
    return problems
