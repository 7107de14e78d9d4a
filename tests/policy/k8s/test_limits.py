"""Every API-server limit, just inside (valid) and just outside (one located diagnostic)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from gpupolicy.policy.k8s import limits
from gpupolicy.policy.k8s.load import load_text

Obj = dict[str, Any]


def claim(requests: list[Obj] | None = None, **devices: Any) -> Obj:
    requests = (
        requests if requests is not None else [{"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com"}}]
    )
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {"devices": {"requests": requests, **devices}},
    }


def exact(**fields: Any) -> list[Obj]:
    return [{"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com", **fields}}]


def allocated(results: list[Obj] | None = None, **status: Any) -> Obj:
    obj = claim()
    result = {"request": "gpu", "driver": "gpu.example.com", "pool": "p", "device": "d"}
    obj["status"] = {"allocation": {"devices": {"results": results or [result]}}, **status}
    return obj


def device_class(**spec: Any) -> Obj:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": "gpu"}, "spec": spec}


def slice_(devices: list[Obj] | None = None, **spec: Any) -> Obj:
    body: Obj = {"driver": "gpu.example.com", "pool": {"name": "p", "generation": 0, "resourceSliceCount": 1}}
    body["nodeName"] = "node-1"
    if devices is not None:
        body["devices"] = devices
    body.update(spec)
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": "s"}, "spec": body}


def device(name: str = "d", **fields: Any) -> Obj:
    return {"name": name, **fields}


def counters(n: int) -> Obj:
    return {f"c{i}": {"value": "1"} for i in range(n)}


def opaque(size: int) -> Obj:
    # {"k":"xxx..."} is 8 bytes plus the string.
    return {"opaque": {"driver": "gpu.example.com", "parameters": {"k": "x" * (size - 8)}}}


def toleration(i: int) -> Obj:
    return {"key": f"k{i}", "operator": "Exists"}


def taint(i: int) -> Obj:
    return {"key": f"k{i}", "effect": "NoSchedule"}


def binding(n: int) -> Obj:
    return {"bindingConditions": [f"c{i}" for i in range(n)], "bindingFailureConditions": ["failed"]}


# (id, limit, build(n) -> object, code when over, path of the diagnostic)
LIMITS: list[tuple[str, int, Callable[[int], Obj], str, str]] = [
    (
        "requests",
        limits.DEVICE_REQUESTS_MAX,
        lambda n: claim([{"name": f"r{i}", "exactly": {"deviceClassName": "x"}} for i in range(n)]),
        "too_many",
        "spec.devices.requests",
    ),
    (
        "selectors",
        limits.DEVICE_SELECTORS_MAX,
        lambda n: claim(exact(selectors=[{"cel": {"expression": "true"}}] * n)),
        "too_many",
        "spec.devices.requests[0].exactly.selectors",
    ),
    (
        "subrequests",
        limits.FIRST_AVAILABLE_MAX,
        lambda n: claim(
            [{"name": "gpu", "firstAvailable": [{"name": f"s{i}", "deviceClassName": "x"} for i in range(n)]}]
        ),
        "too_many",
        "spec.devices.requests[0].firstAvailable",
    ),
    (
        "constraints",
        limits.DEVICE_CONSTRAINTS_MAX,
        lambda n: claim(constraints=[{"matchAttribute": "gpu.example.com/numa"}] * n),
        "too_many",
        "spec.devices.constraints",
    ),
    (
        "claim config",
        limits.DEVICE_CONFIG_MAX,
        lambda n: claim(config=[opaque(10)] * n),
        "too_many",
        "spec.devices.config",
    ),
    (
        "opaque parameters bytes",
        limits.OPAQUE_PARAMETERS_MAX_LENGTH,
        lambda n: claim(config=[opaque(n)]),
        "too_long",
        "spec.devices.config[0].opaque.parameters",
    ),
    (
        "CEL expression length",
        limits.CEL_EXPRESSION_MAX_LENGTH,
        lambda n: claim(exact(selectors=[{"cel": {"expression": "true" + " " * (n - 4)}}])),
        "too_long",
        "spec.devices.requests[0].exactly.selectors[0].cel.expression",
    ),
    (
        "class selectors",
        limits.DEVICE_SELECTORS_MAX,
        lambda n: device_class(selectors=[{"cel": {"expression": "true"}}] * n),
        "too_many",
        "spec.selectors",
    ),
    (
        "class config",
        limits.DEVICE_CONFIG_MAX,
        lambda n: device_class(config=[opaque(10)] * n),
        "too_many",
        "spec.config",
    ),
    (
        "allocation results",
        limits.ALLOCATION_RESULTS_MAX,
        lambda n: allocated([{"request": "gpu", "driver": "d.com", "pool": "p", "device": f"d{i}"} for i in range(n)]),
        "too_many",
        "status.allocation.devices.results",
    ),
    (
        "reservedFor",
        limits.RESERVED_FOR_MAX,
        lambda n: allocated(reservedFor=[{"resource": "pods", "name": f"p{i}", "uid": str(i)} for i in range(n)]),
        "too_many",
        "status.reservedFor",
    ),
    (
        "request name length",
        limits.DNS1123_LABEL_MAX,
        lambda n: claim([{"name": "r" * n, "exactly": {"deviceClassName": "x"}}]),
        "invalid_name",
        "spec.devices.requests[0].name",
    ),
    (
        "device class name length",
        limits.DNS1123_SUBDOMAIN_MAX,
        lambda n: claim(exact(deviceClassName="a" * n)),
        "invalid_name",
        "spec.devices.requests[0].exactly.deviceClassName",
    ),
    (
        "slice devices",
        limits.SLICE_MAX_DEVICES,
        lambda n: slice_([device(f"d{i}") for i in range(n)]),
        "too_many",
        "spec.devices",
    ),
    (
        "slice devices with taints",
        limits.SLICE_MAX_DEVICES_ADVANCED,
        lambda n: slice_([device("d0", taints=[taint(0)])] + [device(f"d{i}") for i in range(1, n)]),
        "too_many",
        "spec.devices",
    ),
    (
        "slice devices consuming counters",
        limits.SLICE_MAX_DEVICES_ADVANCED,
        lambda n: slice_(
            [device("d0", consumesCounters=[{"counterSet": "s", "counters": counters(1)}])]
            + [device(f"d{i}") for i in range(1, n)]
        ),
        "too_many",
        "spec.devices",
    ),
    (
        "attributes and capacities",
        limits.DEVICE_MAX_ATTRIBUTES_AND_CAPACITIES,
        lambda n: slice_(
            [
                device(
                    attributes={f"a{i}": {"int": i} for i in range(n // 2)},
                    capacity={f"c{i}": {"value": "1"} for i in range(n - n // 2)},
                )
            ]
        ),
        "too_many",
        "spec.devices[0]",
    ),
    (
        "attribute id length",
        limits.DEVICE_MAX_ID_LENGTH,
        lambda n: slice_([device(attributes={"a" * n: {"int": 1}})]),
        "invalid_name",
        "spec.devices[0].attributes." + "a" * 33,
    ),
    (
        "attribute domain length",
        limits.DEVICE_MAX_DOMAIN_LENGTH,
        lambda n: slice_([device(attributes={"d" * (n - 4) + ".com/x": {"int": 1}})]),
        "invalid_name",
        "spec.devices[0].attributes." + "d" * 60 + ".com/x",
    ),
    (
        "string attribute length",
        limits.DEVICE_ATTRIBUTE_MAX_VALUE_LENGTH,
        lambda n: slice_([device(attributes={"s": {"string": "x" * n}})]),
        "too_long",
        "spec.devices[0].attributes.s.string",
    ),
    (
        "version attribute length",
        limits.DEVICE_ATTRIBUTE_MAX_VALUE_LENGTH,
        lambda n: slice_([device(attributes={"v": {"version": "1.0.0-" + "a" * (n - 6)}})]),
        "too_long",
        "spec.devices[0].attributes.v.version",
    ),
    (
        "counter sets",
        limits.SLICE_MAX_COUNTER_SETS,
        lambda n: slice_(sharedCounters=[{"name": f"s{i}", "counters": counters(1)} for i in range(n)]),
        "too_many",
        "spec.sharedCounters",
    ),
    (
        "counters per set",
        limits.SLICE_MAX_COUNTERS_PER_SET,
        lambda n: slice_(sharedCounters=[{"name": "s", "counters": counters(n)}]),
        "too_many",
        "spec.sharedCounters[0].counters",
    ),
    (
        "consumesCounters per device",
        limits.DEVICE_MAX_COUNTER_CONSUMPTIONS,
        lambda n: slice_(
            [device(consumesCounters=[{"counterSet": f"s{i}", "counters": counters(1)} for i in range(n)])]
        ),
        "too_many",
        "spec.devices[0].consumesCounters",
    ),
    (
        "counters per consumption",
        limits.DEVICE_MAX_COUNTERS_PER_CONSUMPTION,
        lambda n: slice_([device(consumesCounters=[{"counterSet": "s", "counters": counters(n)}])]),
        "too_many",
        "spec.devices[0].consumesCounters[0].counters",
    ),
    (
        "taints per device",
        limits.DEVICE_TAINTS_MAX,
        lambda n: slice_([device(taints=[taint(i) for i in range(n)])]),
        "too_many",
        "spec.devices[0].taints",
    ),
    (
        "binding conditions",
        limits.BINDING_CONDITIONS_MAX,
        lambda n: slice_([device(**binding(n))]),
        "too_many",
        "spec.devices[0].bindingConditions",
    ),
    (
        "validValues",
        limits.CAPACITY_VALID_VALUES_MAX,
        lambda n: slice_(
            [
                device(
                    allowMultipleAllocations=True,
                    capacity={
                        "m": {
                            "value": "100",
                            "requestPolicy": {"default": "1", "validValues": [str(i + 1) for i in range(n)]},
                        }
                    },
                )
            ]
        ),
        "too_many",
        "spec.devices[0].capacity.m.requestPolicy.validValues",
    ),
    (
        "pool name length",
        limits.POOL_NAME_MAX,
        lambda n: slice_(
            pool={
                "name": "a" * 60 + "/" + "b" * 60 + "/" + "c" * 60 + "/" + "d" * (n - 183),
                "generation": 0,
                "resourceSliceCount": 1,
            }
        ),
        "invalid_name",
        "spec.pool.name",
    ),
    (
        "driver name length",
        limits.DRIVER_NAME_MAX,
        lambda n: slice_(driver="d" * (n - 4) + ".com"),
        "invalid_name",
        "spec.driver",
    ),
    (
        "label value length",
        limits.LABEL_VALUE_MAX,
        lambda n: {**device_class(), "metadata": {"name": "gpu", "labels": {"k": "v" * n}}},
        "invalid_name",
        "metadata.labels.k",
    ),
]


def _load(obj: Obj) -> list[tuple[str, str]]:
    text = yaml.safe_dump(obj, sort_keys=False)
    result = load_text(text, "limit.yaml")
    for d in result.diagnostics:
        assert d.location.line > 0, d  # every diagnostic points into the file
    return [(d.code, d.location.path) for d in result.diagnostics]


@pytest.mark.parametrize(("limit", "build", "code", "path"), [pytest.param(*row[1:], id=row[0]) for row in LIMITS])
def test_limit(limit: int, build: Callable[[int], Obj], code: str, path: str) -> None:
    assert _load(build(limit)) == []
    assert _load(build(limit + 1)) == [(code, path)]


def test_a_request_may_have_more_tolerations_than_the_api_constant() -> None:
    """``DeviceTolerationsMaxLength`` (16) exists in k8s.io/api but the API server does not enforce it (1.37)."""
    assert _load(claim(exact(tolerations=[toleration(i) for i in range(40)]))) == []
