"""ResourceSlices → the solver's devices and counter sets.

Pools are gathered as the Kubernetes allocator does (``gpupolicy.policy.k8s.view.gather_pools``: newest
generation only, sorted by driver then pool name, slices by name). Devices of an *invalid* pool are
left out (the allocator refuses to use them); devices of an *incomplete* pool stay usable for
``ExactCount`` requests but make any ``All`` request that would see them fail, as in Kubernetes.
Quantities become integers (rounded up to whole base units).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gpupolicy.policy.k8s.meta import NodeSelector
from gpupolicy.policy.k8s.nodeselect import node_selector_matches
from gpupolicy.policy.k8s.slice import CapacityRequestPolicy, ResourceSlice
from gpupolicy.policy.k8s.view import PoolDevice, gather_pools
from gpupolicy.policy.quantity import Quantity
from gpupolicy.policy.semver import Semver
from gpupolicy.solver.problem import (
    AttributeValue,
    Capacity,
    CounterSet,
    CounterUse,
    Device,
    NodeName,
    RequestPolicy,
    Taint,
)


@dataclass(frozen=True)
class NodeInfo:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass
class DeviceTable:
    devices: list[Device] = field(default_factory=list)
    pool_devices: list[PoolDevice] = field(default_factory=list)
    counter_sets: list[CounterSet] = field(default_factory=list)
    incomplete: set[int] = field(default_factory=set)  # device indices in incomplete pools
    invalid_pools: list[str] = field(default_factory=list)
    nodes: list[NodeName] = field(default_factory=list)

    def index(self) -> dict[tuple[str, str, str], int]:
        return {d.key: i for i, d in enumerate(self.devices)}


def qint(q: Quantity) -> int:
    return q.ceil_integer()


def _policy(policy: CapacityRequestPolicy | None) -> RequestPolicy | None:
    if policy is None:
        return None
    default = qint(policy.default) if policy.default is not None else None
    values = tuple(sorted(qint(v) for v in policy.valid_values or ()))
    r = policy.valid_range
    if r is None:
        return RequestPolicy(default, values)
    return RequestPolicy(
        default,
        values,
        qint(r.min) if r.min is not None else 0,
        qint(r.max) if r.max is not None else None,
        qint(r.step) if r.step is not None else None,
    )


def _attribute(value: object) -> AttributeValue:
    if isinstance(value, Semver):
        return f"semver:{value}"
    if isinstance(value, bool | int | str):
        return value
    return str(value)


def _nodes(dev: PoolDevice, nodes: Sequence[NodeInfo]) -> frozenset[NodeName] | None:
    if dev.all_nodes:
        return None
    if dev.node_name is not None:
        return frozenset({NodeName(dev.node_name)})
    if dev.node_selector is not None:
        return frozenset(NodeName(n.name) for n in nodes if node_selector_matches(dev.node_selector, n.name, n.labels))
    return frozenset()


def _selector_dict(selector: NodeSelector | None) -> Mapping[str, object] | None:
    return selector.to_wire() if selector is not None else None


_LAST: list[tuple[tuple[ResourceSlice, ...], tuple[tuple[str, tuple[tuple[str, str], ...]], ...], DeviceTable]] = []
"""The last table built, with its inputs: see :func:`build_devices`."""


def build_devices(slices: Sequence[ResourceSlice], nodes: Sequence[NodeInfo]) -> DeviceTable:
    """Every device of ``slices``, in pool order, with the nodes that can reach it. The table (read-only from here
    on) of the previous call is returned again when ``slices`` are the very same objects and ``nodes`` are equal:
    the placement controller loads an unchanged slice once (by resourceVersion), so a pass whose slices did not
    change does not build every device again."""
    key = tuple((n.name, tuple(sorted(n.labels.items()))) for n in nodes)
    last = _LAST[0] if _LAST else None
    same = last is not None and last[1] == key and len(last[0]) == len(slices)
    if last is not None and same and all(a is b for a, b in zip(last[0], slices, strict=True)):
        return last[2]
    table = _build(slices, nodes)
    _LAST[:] = [(tuple(slices), key, table)]
    return table


def _build(slices: Sequence[ResourceSlice], nodes: Sequence[NodeInfo]) -> DeviceTable:
    table = DeviceTable()
    known = {n.name: n for n in nodes}
    for slc in slices:
        name = slc.spec.node_name
        if name and name not in known:
            known[name] = NodeInfo(name, {"kubernetes.io/hostname": name})
    node_list = sorted(known.values(), key=lambda n: n.name)
    table.nodes = [NodeName(n.name) for n in node_list]
    for pool in gather_pools(slices):
        driver, pool_name = pool.id
        if pool.invalid:
            table.invalid_pools.append(f"{driver}/{pool_name}: {pool.invalid_reason}")
            continue
        for cs_name, counters in sorted(pool.counter_sets.items()):
            table.counter_sets.append(CounterSet(driver, pool_name, cs_name, {k: qint(v) for k, v in counters.items()}))
        for position, dev in enumerate(pool.devices):
            if pool.incomplete:
                table.incomplete.add(len(table.devices))
            table.devices.append(_device(dev, position, node_list))
            table.pool_devices.append(dev)
    return table


def _device(dev: PoolDevice, position: int, nodes: Sequence[NodeInfo]) -> Device:
    driver = dev.id.driver
    view = dev.view.attributes
    attributes = {f"{domain}/{ident}": _attribute(v) for domain, ids in view.items() for ident, v in ids.items()}
    capacity = {name: Capacity(qint(cap.value), _policy(cap.request_policy)) for name, cap in dev.capacity.items()}
    consumes = tuple(
        CounterUse(cs, {k: qint(v) for k, v in amounts.items()}) for cs, amounts in sorted(dev.counters.items())
    )
    taints = tuple(Taint(t.key, t.value or "", t.effect) for t in dev.taints)
    return Device(
        driver=driver,
        pool=dev.id.pool,
        name=dev.name,
        slice_name=dev.slice.name,
        node_name=dev.node_name,
        node_selector=_selector_dict(dev.node_selector),
        nodes=_nodes(dev, nodes),
        attributes=attributes,
        capacity=capacity,
        consumes=consumes,
        taints=taints,
        multi_allocatable=dev.allow_multiple_allocations,
        order=(driver, dev.id.pool, dev.slice.name, position),
    )
