"""API-server validation of ResourceSlices."""

from __future__ import annotations

from gpupolicy.policy.k8s import limits, names
from gpupolicy.policy.k8s.checker import Checker, Path
from gpupolicy.policy.k8s.slice import (
    CapacityRequestPolicy,
    Counter,
    Device,
    DeviceAttribute,
    ResourceSlice,
    ResourceSliceSpec,
)
from gpupolicy.policy.k8s.validate_common import (
    check_binding,
    check_meta,
    check_node_selector,
    check_qualified_key,
    check_taint,
)
from gpupolicy.policy.quantity import INT64_MAX, NANO, Quantity


def check_resource_slice(c: Checker, slc: ResourceSlice) -> None:
    check_meta(c, slc.metadata, namespaced=False, name_rule=names.dns1123_subdomain)
    spec = slc.spec
    path: Path = ("spec",)
    c.name(names.driver_name(spec.driver), (*path, "driver"), "driver", spec.driver)
    pool = spec.pool
    c.name(names.pool_name(pool.name), (*path, "pool", "name"), "pool name", pool.name)
    if pool.resource_slice_count <= 0:
        c.add("invalid_value", "resourceSliceCount must be greater than zero", (*path, "pool", "resourceSliceCount"))
    if pool.generation < 0:
        c.add("invalid_value", "generation must be greater than or equal to zero", (*path, "pool", "generation"))
    _check_node_selection(c, spec, path)
    if spec.devices is not None and spec.shared_counters is not None:
        c.add("mutually_exclusive", "only one of `sharedCounters` or `devices` is allowed", path)
    _check_devices(c, spec, (*path, "devices"))
    _check_counter_sets(c, spec, (*path, "sharedCounters"))


def uses_advanced_features(spec: ResourceSliceSpec) -> bool:
    """Taints or counter consumption lower the device limit of a slice to 64."""
    return any(d.taints or d.consumes_counters for d in spec.devices or ())


def max_devices(spec: ResourceSliceSpec) -> int:
    return limits.SLICE_MAX_DEVICES_ADVANCED if uses_advanced_features(spec) else limits.SLICE_MAX_DEVICES


def _check_node_selection(c: Checker, spec: ResourceSliceSpec, path: Path) -> None:
    chosen: list[str] = []
    if spec.node_name is not None:
        if spec.node_name:
            chosen.append("nodeName")
            c.name(names.dns1123_subdomain(spec.node_name), (*path, "nodeName"), "nodeName", spec.node_name)
        else:
            c.add("invalid_value", "nodeName must be either unset or set to a non-empty string", (*path, "nodeName"))
    if spec.node_selector is not None:
        chosen.append("nodeSelector")
        check_node_selector(c, spec.node_selector, (*path, "nodeSelector"))
        if len(spec.node_selector.node_selector_terms) > 1:
            c.add(
                "invalid_value",
                "nodeSelector must have exactly one node selector term",
                (*path, "nodeSelector", "nodeSelectorTerms"),
            )
    for field, value in (("allNodes", spec.all_nodes), ("perDeviceNodeSelection", spec.per_device_node_selection)):
        if value is True:
            chosen.append(field)
        elif value is False:
            c.add("invalid_value", f"{field} must be either unset or set to true", (*path, field))
    fields = "`nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection`"
    if not chosen:
        c.add("missing_field", f"exactly one of {fields} is required", path)
    elif len(chosen) > 1:
        c.add("mutually_exclusive", f"exactly one of {fields} may be set, not {', '.join(chosen)}", path)


def _check_devices(c: Checker, spec: ResourceSliceSpec, path: Path) -> None:
    limit = max_devices(spec)
    what = "devices (taints or consumesCounters in use)" if limit < limits.SLICE_MAX_DEVICES else "devices"
    if c.too_many(spec.devices, limit, path, what):
        return
    per_device = spec.per_device_node_selection is True
    for i, device in enumerate(spec.devices or ()):
        _check_device(c, device, per_device, (*path, i))
    c.unique((d.name for d in spec.devices or ()), path, "device name")


def _check_device(c: Checker, device: Device, per_device: bool, path: Path) -> None:
    c.name(names.dns1123_label(device.name), (*path, "name"), "device name", device.name)
    attributes, capacity = device.attributes or {}, device.capacity or {}
    total = len(attributes) + len(capacity)
    if total > limits.DEVICE_MAX_ATTRIBUTES_AND_CAPACITIES:
        c.add(
            "too_many",
            f"the total number of attributes and capacities ({total}) must not exceed "
            f"{limits.DEVICE_MAX_ATTRIBUTES_AND_CAPACITIES}",
            path,
        )
    for key, attr in attributes.items():
        check_qualified_key(c, key, (*path, "attributes", key), "attribute name")
        _check_attribute(c, attr, (*path, "attributes", key))
    multi = device.allow_multiple_allocations is True
    for key, cap in capacity.items():
        kpath = (*path, "capacity", key)
        check_qualified_key(c, key, kpath, "capacity name")
        if cap.request_policy is not None:
            if not multi:
                c.add("invalid_value", "requestPolicy needs allowMultipleAllocations: true", (*kpath, "requestPolicy"))
            else:
                _check_request_policy(c, cap.value, cap.request_policy, (*kpath, "requestPolicy"))
    if not c.too_many(device.taints, limits.DEVICE_TAINTS_MAX, (*path, "taints"), "taints"):
        c.each(device.taints, (*path, "taints"), lambda t, p: check_taint(c, t, p))
    _check_consumption(c, device, (*path, "consumesCounters"))
    _check_device_nodes(c, device, per_device, path)
    check_binding(c, device.binding_conditions, device.binding_failure_conditions, path)


def _check_attribute(c: Checker, attr: DeviceAttribute, path: Path) -> None:
    values = [v for v in (attr.int_value, attr.bool_value, attr.string_value, attr.version_value) if v is not None]
    if not values:
        c.add("missing_field", "exactly one value (int, bool, string or version) must be specified", path)
    elif len(values) > 1:
        c.add("mutually_exclusive", "exactly one value (int, bool, string or version) must be specified", path)
    if attr.string_value is not None:
        c.too_long(attr.string_value, limits.DEVICE_ATTRIBUTE_MAX_VALUE_LENGTH, (*path, "string"), "string value")
    if attr.version_value is not None:
        c.too_long(
            str(attr.version_value), limits.DEVICE_ATTRIBUTE_MAX_VALUE_LENGTH, (*path, "version"), "version value"
        )


def _check_request_policy(c: Checker, capacity: Quantity, policy: CapacityRequestPolicy, path: Path) -> None:
    if policy.valid_values and policy.valid_range is not None:
        c.add("mutually_exclusive", "only one of validValues and validRange may be set", path)
        return
    if (policy.valid_values or policy.valid_range is not None) and policy.default is None:
        c.add("missing_field", "default is required when validValues or validRange is set", (*path, "default"))
        return
    default = policy.default
    if policy.valid_values:
        vpath = (*path, "validValues")
        if c.too_many(policy.valid_values, limits.CAPACITY_VALID_VALUES_MAX, vpath, "validValues"):
            return
        values = policy.valid_values
        for i in range(1, len(values)):
            if values[i - 1] > values[i]:
                c.add("invalid_value", "values must be sorted in ascending order", (*vpath, i))
        for i, value in enumerate(values):
            if value > capacity:
                c.add("invalid_value", f"option is larger than capacity value: {capacity}", (*vpath, i))
        # Duplicates by integer value (quantityKeyInt; DRAFractionalCapacityRange off): 1500m and 2 are the same.
        c.unique((go_value(v) for v in values), vpath, "value", code="duplicate_value")
        if default is not None and default not in values:
            c.add("invalid_value", f"default value {default} is not one of validValues", vpath)
    elif policy.valid_range is not None and default is not None:
        _check_range(c, capacity, default, policy, (*path, "validRange"))


def _check_range(c: Checker, capacity: Quantity, default: Quantity, policy: CapacityRequestPolicy, path: Path) -> None:
    rng = policy.valid_range
    assert rng is not None
    if rng.min is None:
        c.add("missing_field", "min is required when validRange is defined", (*path, "min"))
        return
    low = rng.min
    if low > capacity:
        c.add("invalid_value", f"min is larger than capacity value: {capacity}", (*path, "min"))
    if default < low:
        c.add("invalid_value", f"default is less than min: {low}", (*path, "default"))
    if rng.max is not None:
        if low > rng.max:
            c.add("invalid_value", f"min is larger than max: {rng.max}", (*path, "max"))
        if rng.max > capacity:
            c.add("invalid_value", f"max is larger than capacity value: {capacity}", (*path, "max"))
        if default > rng.max:
            c.add("invalid_value", f"default is more than max: {rng.max}", (*path, "default"))
    if rng.step is None:
        return
    step = rng.step
    if step.sign() <= 0:
        c.add("invalid_value", "step must be greater than zero", (*path, "step"))
        return
    if low + step > capacity:
        c.add("invalid_value", f"one step {low + step} is larger than capacity value: {capacity}", (*path, "step"))
    # DRAFractionalCapacityRange off (the default in 1.37): every bound must be a non-negative int64, and the step
    # check is done on the values rounded up to integers (Quantity.Value), as validateRequestPolicyRangeStep does.
    unsafe = False
    for name, value in (("default", default), ("min", low), ("max", rng.max), ("step", step)):
        if value is None:
            continue
        if value.sign() < 0:
            c.add("invalid_value", f"{name} must be greater than or equal to 0", (*path, name))
            unsafe = True
        elif value.nanos > INT64_MAX * NANO:
            c.add("invalid_value", f"{name} must not be larger than {INT64_MAX}", (*path, name))
            unsafe = True
    if unsafe:
        return
    for value in (default, rng.max):
        if value is not None and (go_value(value) - go_value(low)) % go_value(step) != 0:
            c.add("invalid_value", f"value {value} is not a multiple of step ({step}) from ({low})", (*path, "step"))


def go_value(q: Quantity) -> int:
    """``Quantity.Value()``: the integer value, a fraction rounded away from zero (``1500m`` is 2)."""
    magnitude = -(-abs(q.nanos) // NANO)
    return magnitude if q.sign() >= 0 else -magnitude


def _check_consumption(c: Checker, device: Device, path: Path) -> None:
    items = device.consumes_counters
    if c.too_many(items, limits.DEVICE_MAX_COUNTER_CONSUMPTIONS, path, "consumesCounters"):
        return
    for i, item in enumerate(items or ()):
        ipath = (*path, i)
        if c.required(item.counter_set, (*ipath, "counterSet"), "counterSet"):
            c.name(names.dns1123_label(item.counter_set), (*ipath, "counterSet"), "counterSet", item.counter_set)
        _check_counters(c, item.counters, limits.DEVICE_MAX_COUNTERS_PER_CONSUMPTION, (*ipath, "counters"))
    c.unique((item.counter_set for item in items or ()), path, "counterSet")


def _check_counters(c: Checker, counters: dict[str, Counter] | None, limit: int, path: Path) -> None:
    if not c.required(counters, path, "counters") or c.too_many(counters, limit, path, "counters"):
        return
    for key in counters or {}:
        c.name(names.dns1123_label(key), (*path, key), "counter name", key)


def _check_counter_sets(c: Checker, spec: ResourceSliceSpec, path: Path) -> None:
    sets = spec.shared_counters
    if c.too_many(sets, limits.SLICE_MAX_COUNTER_SETS, path, "sharedCounters"):
        return
    for i, counter_set in enumerate(sets or ()):
        ipath = (*path, i)
        if c.required(counter_set.name, (*ipath, "name"), "name"):
            c.name(names.dns1123_label(counter_set.name), (*ipath, "name"), "counter set name", counter_set.name)
        _check_counters(c, counter_set.counters, limits.SLICE_MAX_COUNTERS_PER_SET, (*ipath, "counters"))
    c.unique((s.name for s in sets or ()), path, "counter set name")


def _check_device_nodes(c: Checker, device: Device, per_device: bool, path: Path) -> None:
    has_any = device.node_name is not None or device.node_selector is not None or device.all_nodes is not None
    if not per_device:
        if has_any:
            c.add(
                "invalid_value",
                "`nodeName`, `nodeSelector` and `allNodes` can only be set if "
                "`perDeviceNodeSelection` is set to true in the ResourceSlice spec",
                path,
            )
        return
    chosen: list[str] = []
    if device.node_name is not None:
        if device.node_name:
            chosen.append("nodeName")
            c.name(names.dns1123_subdomain(device.node_name), (*path, "nodeName"), "nodeName", device.node_name)
        else:
            c.add("invalid_value", "nodeName must not be empty", (*path, "nodeName"))
    if device.node_selector is not None:
        chosen.append("nodeSelector")
        check_node_selector(c, device.node_selector, (*path, "nodeSelector"))
    if device.all_nodes is True:
        chosen.append("allNodes")
    elif device.all_nodes is False:
        c.add("invalid_value", "allNodes must be either unset or set to true", (*path, "allNodes"))
    fields = "`nodeName`, `nodeSelector` or `allNodes`"
    if not chosen:
        c.add("missing_field", f"exactly one of {fields} is required when perDeviceNodeSelection is true", path)
    elif len(chosen) > 1:
        c.add("mutually_exclusive", f"exactly one of {fields} may be set, not {', '.join(chosen)}", path)
