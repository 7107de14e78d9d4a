"""The CEL environments: the variables an expression may use, their static types, and their values.

Environments (``env=``):

* ``"selector"``: ``device`` (``driver``, ``attributes[domain][id]``, ``capacity[domain][id]``,
  ``allowMultipleAllocations``), as in DeviceClass and ResourceClaim selectors.
* ``"admission"``: ``device`` plus ``claim`` (``namespace``, ``name``, ``labels``,
  ``annotations``) and ``request`` (``name``, ``deviceClassName``, ``count``, ``allocationMode``,
  ``capacity`` as a map of quantities).
"""

from __future__ import annotations

from collections.abc import Mapping

from gpupolicy.policy.cel.core import ANY, StaticType, map_of
from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.quantity import Quantity

_ATTRS: StaticType = map_of("string", map_of("string", ANY))
_CAPS: StaticType = map_of("string", map_of("string", "quantity"))
OBJECTS: dict[str, dict[str, StaticType]] = {
    "device": {"driver": "string", "attributes": _ATTRS, "capacity": _CAPS, "allowMultipleAllocations": "bool"},
    "claim": {
        "namespace": "string",
        "name": "string",
        "labels": map_of("string", "string"),
        "annotations": map_of("string", "string"),
    },
    "request": {
        "name": "string",
        "deviceClassName": "string",
        "count": "int",
        "allocationMode": "string",
        "capacity": map_of("string", "quantity"),
    },
}
ENVIRONMENTS: dict[str, dict[str, StaticType]] = {
    "selector": {"device": ("object", "device")},
    "admission": {"device": ("object", "device"), "claim": ("object", "claim"), "request": ("object", "request")},
}


class DomainMap(dict[str, Mapping[str, object]]):
    """``device.attributes`` / ``device.capacity``: an unknown domain reads as an empty map, and ``has()``
    is true for it (:func:`~gpupolicy.policy.cel.runtime.ops.has_field`), as in Kubernetes, while ``in``,
    ``size()`` and iteration see only the domains the device has: ``"other.io" in device.attributes`` is false."""

    _EMPTY: Mapping[str, object] = {}

    def __missing__(self, domain: str) -> Mapping[str, object]:
        return self._EMPTY


def device_value(device: DeviceView) -> dict[str, object]:
    """The ``device`` variable for one device; built once per device object and reused
    (CEL cannot modify values, and ``DeviceView`` is frozen)."""
    value: dict[str, object] | None = device.__dict__.get("_cel_value")
    if value is None:
        value = {
            "driver": device.driver,
            "attributes": DomainMap(device.attributes),
            "capacity": DomainMap(device.capacity),
            "allowMultipleAllocations": device.allow_multiple_allocations,
        }
        device.__dict__["_cel_value"] = value
    return value


def claim_value(claim: Mapping[str, object]) -> dict[str, object]:
    return {
        "namespace": str(claim.get("namespace", "")),
        "name": str(claim.get("name", "")),
        "labels": dict(claim.get("labels") or {}),  # type: ignore[call-overload]
        "annotations": dict(claim.get("annotations") or {}),  # type: ignore[call-overload]
    }


def request_value(request: Mapping[str, object]) -> dict[str, object]:
    count = request.get("count", 1)
    raw = request.get("capacity")
    capacity: Mapping[object, object] = raw if isinstance(raw, Mapping) else {}
    return {
        "name": str(request.get("name", "")),
        "deviceClassName": str(request.get("deviceClassName", "")),
        "count": count if isinstance(count, int) else 1,
        "allocationMode": str(request.get("allocationMode", "ExactCount")),
        "capacity": {str(k): v if isinstance(v, Quantity) else Quantity.parse(str(v)) for k, v in capacity.items()},
    }
