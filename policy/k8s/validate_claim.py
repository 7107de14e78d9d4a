"""API-server validation of DeviceClass, ResourceClaim (spec and status) and ResourceClaimTemplate."""

from __future__ import annotations

from collections.abc import Sequence

from gpupolicy.policy.k8s import limits, names
from gpupolicy.policy.k8s.checker import Checker, Path
from gpupolicy.policy.k8s.claim import (
    AllocatedDeviceStatus,
    AllocationResult,
    DeviceClaim,
    DeviceRequest,
    DeviceRequestAllocationResult,
    RequestFields,
    ResourceClaim,
    ResourceClaimStatus,
    ResourceClaimTemplate,
)
from gpupolicy.policy.k8s.deviceclass import DeviceClass
from gpupolicy.policy.k8s.meta import Condition
from gpupolicy.policy.k8s.validate_common import (
    check_binding,
    check_labels_annotations,
    check_meta,
    check_node_selector,
    check_opaque,
    check_selectors,
    check_toleration,
    check_uid,
)

RequestNames = dict[str, set[str]]
"""Request name -> its subrequest names (empty for an exact request)."""


def request_names(claim: DeviceClaim | None) -> RequestNames:
    return {r.name: {s.name for s in r.first_available or ()} for r in (claim.requests or () if claim else ())}


def _has_ref(known: RequestNames, ref: str) -> bool:
    parts = ref.split("/")
    if len(parts) > 2 or parts[0] not in known:
        return False
    return len(parts) == 1 or parts[1] in known[parts[0]]


def check_request_refs(c: Checker, refs: Sequence[str] | None, known: RequestNames, path: Path) -> None:
    if c.too_many(refs, limits.DEVICE_REQUESTS_MAX, path, "requests"):
        return
    for i, ref in enumerate(refs or ()):
        if not _has_ref(known, ref):
            c.add(
                "unknown_reference",
                f"{ref!r} must be the name of a request in the claim or a request and a subrequest separated by '/'",
                (*path, i),
            )
    c.unique(refs or (), path, "request reference")


def check_device_class(c: Checker, cls: DeviceClass) -> None:
    check_meta(c, cls.metadata, namespaced=False, name_rule=names.dns1123_subdomain)
    check_selectors(c, cls.spec.selectors, ("spec", "selectors"))
    config = cls.spec.config
    if not c.too_many(config, limits.DEVICE_CONFIG_MAX, ("spec", "config"), "config"):
        c.each(config, ("spec", "config"), lambda cfg, p: check_opaque(c, cfg.opaque, p))
    ext = cls.spec.extended_resource_name
    if ext is not None and not _is_extended_resource_name(ext):
        c.add(
            "invalid_name",
            f"extendedResourceName {ext!r} must be a valid extended resource name",
            ("spec", "extendedResourceName"),
        )


def _is_extended_resource_name(name: str) -> bool:
    """``v1helper.IsExtendedResourceName``: prefixed, not in any ``kubernetes.io/`` domain (so not the implicit
    ``deviceclass.resource.kubernetes.io/<class>`` name either), no ``requests.`` prefix, and a qualified name
    once ``requests.`` is put in front of it (as resource quota spells it)."""
    if "/" not in name or "kubernetes.io/" in name or name.startswith("requests."):
        return False
    return not names.label_key(f"requests.{name}")


def check_device_claim(c: Checker, claim: DeviceClaim | None, path: Path) -> None:
    if claim is None:
        return
    known = request_names(claim)
    rpath = (*path, "requests")
    if not c.too_many(claim.requests, limits.DEVICE_REQUESTS_MAX, rpath, "requests"):
        c.each(claim.requests, rpath, lambda r, p: _check_request(c, r, p))
        c.unique((r.name for r in claim.requests or ()), rpath, "request name")
    cpath = (*path, "constraints")
    if not c.too_many(claim.constraints, limits.DEVICE_CONSTRAINTS_MAX, cpath, "constraints"):
        for i, con in enumerate(claim.constraints or ()):
            ipath = (*cpath, i)
            check_request_refs(c, con.requests, known, (*ipath, "requests"))
            # As validateDeviceConstraint: matchAttribute wins when both are set (distinctAttribute is then
            # neither checked nor refused).
            if con.match_attribute is not None:
                field, value = "matchAttribute", con.match_attribute
            elif con.distinct_attribute is not None:
                field, value = "distinctAttribute", con.distinct_attribute
            else:
                c.add("missing_field", "exactly one of matchAttribute or distinctAttribute is required", ipath)
                continue
            c.name(names.fully_qualified_name(value), (*ipath, field), field, value)
    gpath = (*path, "config")
    if not c.too_many(claim.config, limits.DEVICE_CONFIG_MAX, gpath, "config"):
        for i, cfg in enumerate(claim.config or ()):
            check_request_refs(c, cfg.requests, known, (*gpath, i, "requests"))
            check_opaque(c, cfg.opaque, (*gpath, i))


def _check_request(c: Checker, request: DeviceRequest, path: Path) -> None:
    c.name(names.dns1123_label(request.name), (*path, "name"), "request name", request.name)
    if request.exactly is not None and request.first_available:
        c.add("mutually_exclusive", "exactly one of `exactly` or `firstAvailable` may be set", path)
    elif request.exactly is None and not request.first_available:
        c.add("missing_field", "exactly one of `exactly` or `firstAvailable` is required", path)
    elif request.exactly is not None:
        _check_request_fields(c, request.exactly, (*path, "exactly"))
    else:
        fpath = (*path, "firstAvailable")
        if not c.too_many(request.first_available, limits.FIRST_AVAILABLE_MAX, fpath, "firstAvailable"):
            for i, sub in enumerate(request.first_available or ()):
                c.name(names.dns1123_label(sub.name), (*fpath, i, "name"), "subrequest name", sub.name)
                _check_request_fields(c, sub, (*fpath, i))
            c.unique((s.name for s in request.first_available or ()), fpath, "subrequest name")


def _check_request_fields(c: Checker, req: RequestFields, path: Path) -> None:
    if c.required(req.device_class_name, (*path, "deviceClassName"), "deviceClassName"):
        c.name(
            names.dns1123_subdomain(req.device_class_name),
            (*path, "deviceClassName"),
            "deviceClassName",
            req.device_class_name,
        )
    check_selectors(c, req.selectors, (*path, "selectors"))
    count = req.count or 0
    if req.mode == "All" and count != 0:
        c.add("mutually_exclusive", "count must not be specified when allocationMode is 'All'", (*path, "count"))
    elif req.mode == "ExactCount" and count < 0:
        c.add("invalid_value", f"count must be greater than zero, not {count}", (*path, "count"))
    # No limit on a request's tolerations, and capacity.requests is not checked at all by the API server
    # (validateExactDeviceRequest, k8s 1.37): an unknown or negative amount simply matches no device.
    c.each(req.tolerations, (*path, "tolerations"), lambda t, p: check_toleration(c, t, p))


def check_resource_claim(c: Checker, claim: ResourceClaim) -> None:
    check_meta(c, claim.metadata, namespaced=True, name_rule=names.dns1123_subdomain)
    check_device_claim(c, claim.spec.devices, ("spec", "devices"))
    if claim.status is not None:
        check_claim_status(c, claim.status, request_names(claim.spec.devices), ("status",))


def check_resource_claim_template(c: Checker, template: ResourceClaimTemplate) -> None:
    check_meta(c, template.metadata, namespaced=True, name_rule=names.dns1123_subdomain)
    inner = template.spec.metadata
    if inner is not None:
        extra = sorted(k for k in inner.model_fields_set if k not in ("labels", "annotations"))
        for field in extra:
            alias = type(inner).model_fields[field].alias or field
            c.add(
                "invalid_value",
                "only labels and annotations may be set in a template's metadata",
                ("spec", "metadata", alias),
            )
        check_labels_annotations(c, inner, ("spec", "metadata"))
    check_device_claim(c, template.spec.spec.devices, ("spec", "spec", "devices"))


def check_claim_status(c: Checker, status: ResourceClaimStatus, known: RequestNames, path: Path) -> None:
    rpath = (*path, "reservedFor")
    if not c.too_many(status.reserved_for, limits.RESERVED_FOR_MAX, rpath, "reservedFor"):
        for i, ref in enumerate(status.reserved_for or ()):
            for field, value in (("resource", ref.resource), ("name", ref.name), ("uid", ref.uid)):
                c.required(value, (*rpath, i, field), field)
        c.unique((r.uid for r in status.reserved_for or ()), rpath, "consumer uid", code="duplicate_value")
    if status.reserved_for and status.allocation is None:
        c.add("invalid_value", "reservedFor may not be set when the claim is not allocated", rpath)
    allocated: set[tuple[str, str, str, str | None]] = set()
    if status.allocation is not None:
        _check_allocation(c, status.allocation, known, (*path, "allocation"))
        allocated = {(r.driver, r.pool, r.device, r.share_id) for r in status.allocation.results}
    dpath = (*path, "devices")
    for i, dev in enumerate(status.devices or ()):
        _check_device_status(c, dev, allocated, (*dpath, i))
    c.unique(
        ((d.driver, d.pool, d.device, d.share_id) for d in status.devices or ()),
        dpath,
        "device status",
        code="duplicate_value",
    )


def _check_allocation(c: Checker, alloc: AllocationResult, known: RequestNames, path: Path) -> None:
    devices = alloc.devices
    if devices is not None:
        rpath = (*path, "devices", "results")
        if not c.too_many(devices.results, limits.ALLOCATION_RESULTS_MAX, rpath, "results"):
            c.each(devices.results, rpath, lambda r, p: _check_result(c, r, known, p))
        gpath = (*path, "devices", "config")
        if not c.too_many(devices.config, limits.ALLOCATION_CONFIG_MAX, gpath, "config"):
            for i, cfg in enumerate(devices.config or ()):
                check_request_refs(c, cfg.requests, known, (*gpath, i, "requests"))
                check_opaque(c, cfg.opaque, (*gpath, i))
    if alloc.node_selector is not None:
        check_node_selector(c, alloc.node_selector, (*path, "nodeSelector"))


def _check_result(c: Checker, result: DeviceRequestAllocationResult, known: RequestNames, path: Path) -> None:
    if not _has_ref(known, result.request):
        c.add("unknown_reference", f"request {result.request!r} is not a request of this claim", (*path, "request"))
    c.name(names.driver_name(result.driver), (*path, "driver"), "driver", result.driver)
    c.name(names.pool_name(result.pool), (*path, "pool"), "pool", result.pool)
    c.name(names.dns1123_label(result.device), (*path, "device"), "device", result.device)
    check_binding(c, result.binding_conditions, result.binding_failure_conditions, path)
    c.each(result.tolerations, (*path, "tolerations"), lambda t, p: check_toleration(c, t, p))
    if result.share_id is not None:
        check_uid(c, result.share_id, (*path, "shareID"), "shareID")


def _check_device_status(
    c: Checker, dev: AllocatedDeviceStatus, allocated: set[tuple[str, str, str, str | None]], path: Path
) -> None:
    c.name(names.driver_name(dev.driver), (*path, "driver"), "driver", dev.driver)
    c.name(names.pool_name(dev.pool), (*path, "pool"), "pool", dev.pool)
    c.name(names.dns1123_label(dev.device), (*path, "device"), "device", dev.device)
    if dev.share_id is not None:
        check_uid(c, dev.share_id, (*path, "shareID"), "shareID")
    if (dev.driver, dev.pool, dev.device, dev.share_id) not in allocated:
        c.add(
            "unknown_reference", f"{dev.driver}/{dev.pool}/{dev.device} must be an allocated device in the claim", path
        )
    c.too_many(dev.conditions, limits.DEVICE_STATUS_CONDITIONS_MAX, (*path, "conditions"), "conditions")
    check_conditions(c, dev.conditions or (), (*path, "conditions"))
    if dev.data is not None:
        c.json_object(dev.data, limits.DEVICE_STATUS_DATA_MAX_LENGTH, (*path, "data"), "data")
    net = dev.network_data
    if net is not None:
        npath = (*path, "networkData")
        c.too_long(
            net.interface_name or "", limits.NETWORK_INTERFACE_NAME_MAX, (*npath, "interfaceName"), "interfaceName"
        )
        c.too_long(
            net.hardware_address or "",
            limits.NETWORK_HARDWARE_ADDRESS_MAX,
            (*npath, "hardwareAddress"),
            "hardwareAddress",
        )
        if not c.too_many(net.ips, limits.NETWORK_DATA_MAX_IPS, (*npath, "ips"), "ips"):
            for i, ip in enumerate(net.ips or ()):
                problem = names.interface_address(ip)
                if problem:
                    c.add("invalid_value", f"IP {ip!r} {problem}", (*npath, "ips", i))
            c.unique(net.ips or (), (*npath, "ips"), "IP", code="duplicate_value")


def check_conditions(c: Checker, conditions: Sequence[Condition], path: Path) -> None:
    """metav1 ValidateConditions: unique types that are label keys, a reason in CamelCase-ish form, bounded
    lengths, a non-negative observedGeneration (status and lastTransitionTime are checked by the model)."""
    c.unique((cond.type for cond in conditions), path, "condition type", code="duplicate_value")
    for i, cond in enumerate(conditions):
        cpath = (*path, i)
        if c.required(cond.type, (*cpath, "type"), "type"):
            c.name(names.label_key(cond.type), (*cpath, "type"), "condition type", cond.type)
        if (cond.observed_generation or 0) < 0:
            c.add(
                "invalid_value",
                "observedGeneration must be greater than or equal to zero",
                (*cpath, "observedGeneration"),
            )
        if c.required(cond.reason, (*cpath, "reason"), "reason"):
            if not names.is_condition_reason(cond.reason):
                c.add(
                    "invalid_name",
                    f"reason {cond.reason!r} must start with a letter, hold only letters, digits, '_', ',' and ':', "
                    "and end with a letter, digit or '_'",
                    (*cpath, "reason"),
                )
            c.too_long(cond.reason, limits.CONDITION_REASON_MAX_LENGTH, (*cpath, "reason"), "reason")
        c.too_long(cond.message, limits.CONDITION_MESSAGE_MAX_LENGTH, (*cpath, "message"), "message")
