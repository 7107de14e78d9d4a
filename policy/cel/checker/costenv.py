"""The maximum sizes of what the variables hold, for the cost estimate: Kubernetes' DRA ``sizeEstimator``
(``k8s.io/dynamic-resource-allocation/cel``) over the types it declares for ``device``.

A path is a variable followed by field names and ``@items`` / ``@values`` / ``@keys``; the estimate is
``(0, max elements)`` of the declared type at its end, or ``None`` where nothing is declared. ``driver`` holds at
most 63 characters, a domain 63, an attribute or capacity name 32, an attribute value 64 (the size of a string
or version), each map 32 entries, ``allowMultipleAllocations`` 1, and a quantity 0 (as Kubernetes declares it).
``claim`` and ``request`` belong to gpupolicy's admission environment, which Kubernetes does not have: names
and namespaces use Kubernetes' object limits (253, 63), label keys 317 and values 63; label and annotation maps
are assumed to hold at most 64 entries and annotation values 1024 characters (Kubernetes bounds only their total
size), and ``request.capacity`` 32 entries. Where the data is bigger, the run-time budget still stops the work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpupolicy.policy.cel.checker.costmath import Est


@dataclass(frozen=True)
class Decl:
    max_elements: int
    fields: dict[str, Decl] = field(default_factory=dict)
    key: Decl | None = None
    elem: Decl | None = None


def _string(n: int) -> Decl:
    return Decl(n)


def _map(key: Decl, elem: Decl, n: int) -> Decl:
    return Decl(n, key=key, elem=elem)


_MAX_PER_DEVICE = 32  # ResourceSliceMaxAttributesAndCapacitiesPerDevice
ATTRIBUTE = Decl(64)  # DeviceAttributeMaxValueLength
_DOMAIN, _ID = _string(63), _string(32)
_QUANTITY = Decl(0)
DEVICE = Decl(
    0,
    fields={
        "driver": _string(63),
        "attributes": _map(_DOMAIN, _map(_ID, ATTRIBUTE, _MAX_PER_DEVICE), _MAX_PER_DEVICE),
        "capacity": _map(_DOMAIN, _map(_ID, _QUANTITY, _MAX_PER_DEVICE), _MAX_PER_DEVICE),
        "allowMultipleAllocations": Decl(1),
    },
)
_LABELS = 64
CLAIM = Decl(
    0,
    fields={
        "namespace": _string(63),
        "name": _string(253),
        "labels": _map(_string(317), _string(63), _LABELS),
        "annotations": _map(_string(317), _string(1024), _LABELS),
    },
)
REQUEST = Decl(
    0,
    fields={
        "name": _string(63),
        "deviceClassName": _string(253),
        "allocationMode": _string(16),
        "capacity": _map(_string(317), _QUANTITY, _MAX_PER_DEVICE),
    },
)
ROOTS = {"device": DEVICE, "claim": CLAIM, "request": REQUEST}


def estimate_size(path: tuple[str, ...] | None) -> Est | None:
    if not path:
        return None
    node = ROOTS.get(path[0])
    if node is None:
        return None
    for name in path[1:]:
        if name in ("@items", "@values"):
            nxt = node.elem
        elif name == "@keys":
            nxt = node.key
        else:
            nxt = node.fields.get(name)
            if nxt is None and node.elem is ATTRIBUTE:  # any attribute name: the attribute type
                nxt = ATTRIBUTE
        if nxt is None:
            return None
        node = nxt
    return (0, node.max_elements)
