"""Turn "these GPUs on this node under this policy" into the ResourceSlices a driver publishes.

One pool per node, named after the node, owned by the Node object. Layout (Kubernetes 1.35+):

- shared counters live in counters-only slices, at most 8 counter sets each;
- a GPU with dynamic MIG gets device slices of its own (at most 64 devices each, since its
  devices consume counters);
- every other device is packed into slices of at most 128 devices (64 when any of them is tainted).

Slice names are ``<node>-<driver with dots as dashes>-<index>``; the order of GPUs (by minor),
devices and slices is deterministic, so the same input always yields the same objects, and
``resourceSliceCount`` is the number of slices returned. Both the CLI (``gpupolicy render``,
cluster descriptions) and the plugin call :func:`build_slices`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gpupolicy.policy.builder_devices import Wire, gpu_attributes, gpu_devices
from gpupolicy.policy.device import AttributeValue, DeviceView, split_qualified
from gpupolicy.policy.gpu import EXCLUSIVE, GpuInfo, Publish
from gpupolicy.policy.k8s import limits
from gpupolicy.policy.k8s.slice import ResourceSlice
from gpupolicy.policy.quantity import Quantity
from gpupolicy.policy.semver import Semver

DEFAULT_DRIVER = "gpu.gpupolicy.dev"

PublishFor = Callable[[GpuInfo, DeviceView], Publish]


@dataclass(frozen=True)
class NodeRef:
    """The Node that owns the slices."""

    name: str
    uid: str = ""


def attribute_value(wire: Mapping[str, Any]) -> AttributeValue:
    if "version" in wire:
        return Semver.parse(wire["version"])
    for key in ("string", "int", "bool"):
        if key in wire:
            value: AttributeValue = wire[key]
            return value
    raise ValueError(f"attribute without a value: {wire}")


def device_view(driver: str, device: Mapping[str, Any]) -> DeviceView:
    """The CEL ``device`` variable for a device given as a wire dict."""
    attributes: dict[str, dict[str, AttributeValue]] = {}
    for name, value in (device.get("attributes") or {}).items():
        domain, ident = split_qualified(name, driver)
        attributes.setdefault(domain, {})[ident] = attribute_value(value)
    capacity: dict[str, dict[str, Quantity]] = {}
    for name, value in (device.get("capacity") or {}).items():
        domain, ident = split_qualified(name, driver)
        capacity.setdefault(domain, {})[ident] = Quantity.parse(value["value"])
    return DeviceView(driver, attributes, capacity, bool(device.get("allowMultipleAllocations", False)))


def gpu_view(gpu: GpuInfo, driver: str = DEFAULT_DRIVER) -> DeviceView:
    """The full GPU as a sharing rule's selector sees it (before any sharing is applied)."""
    capacity = {"memory": {"value": str(gpu.effective_memory_bytes)}}
    device: Wire = {"attributes": gpu_attributes(gpu), "capacity": capacity}
    return device_view(driver, device)


def _chunks(items: Sequence[Wire], size: int) -> list[list[Wire]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _device_groups(
    gpus: Iterable[GpuInfo], publish_for: PublishFor | None, driver: str
) -> tuple[list[list[Wire]], list[Wire]]:
    """(device slices' contents, counter sets), in GPU-minor order."""
    counter_sets: list[Wire] = []
    plain: list[Wire] = []
    groups: list[list[Wire]] = []
    for gpu in sorted(gpus, key=lambda g: g.minor):
        publish = publish_for(gpu, gpu_view(gpu, driver)) if publish_for else EXCLUSIVE
        devices, counters = gpu_devices(gpu, publish)
        if counters is not None:
            counter_sets.append(counters)
            groups.extend(_chunks(devices, limits.SLICE_MAX_DEVICES_ADVANCED))
        else:
            plain.extend(devices)
    tainted = any("taints" in d for d in plain)
    size = limits.SLICE_MAX_DEVICES_ADVANCED if tainted else limits.SLICE_MAX_DEVICES
    return _chunks(plain, size) + groups, counter_sets


def slice_name(node: str, driver: str, index: int) -> str:
    return f"{node}-{driver.replace('.', '-')}-{index}"


def build_slices(
    node: NodeRef | str,
    gpus: Iterable[GpuInfo],
    *,
    publish_for: PublishFor | None = None,
    driver: str = DEFAULT_DRIVER,
    generation: int = 1,
) -> list[ResourceSlice]:
    """Every ResourceSlice of ``node``'s pool. ``publish_for`` picks each GPU's sharing (default: exclusive).

    An empty node still gets one (empty) slice, so consumers see a complete, empty pool.
    """
    ref = NodeRef(node) if isinstance(node, str) else node
    device_slices, counter_sets = _device_groups(gpus, publish_for, driver)
    specs: list[Wire] = [{"sharedCounters": c} for c in _chunks(counter_sets, limits.SLICE_MAX_COUNTER_SETS)]
    specs += [{"devices": d} for d in device_slices]
    if not specs:
        specs = [{"devices": []}]
    metadata: Wire = {}
    if ref.uid:
        metadata["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": ref.name, "uid": ref.uid, "controller": True}
        ]
    out = []
    for index, body in enumerate(specs):
        wire = {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceSlice",
            "metadata": {"name": slice_name(ref.name, driver, index), **metadata},
            "spec": {
                "driver": driver,
                "nodeName": ref.name,
                "pool": {"name": ref.name, "generation": generation, "resourceSliceCount": len(specs)},
                **body,
            },
        }
        out.append(ResourceSlice.model_validate(wire))
    return out
