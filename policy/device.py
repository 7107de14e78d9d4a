"""The device as CEL selectors see it: Kubernetes' ``device`` variable.

``attributes`` and ``capacity`` are keyed by fully qualified domain, then by ID: an attribute
``productName`` published unqualified by driver ``gpu.example.com`` is
``attributes["gpu.example.com"]["productName"]``; one published as
``resource.kubernetes.io/pciBusID`` is ``attributes["resource.kubernetes.io"]["pciBusID"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from gpupolicy.policy.quantity import Quantity
    from gpupolicy.policy.semver import Semver

AttributeValue = Union[bool, int, str, "Semver"]


@dataclass(frozen=True, eq=False)
class DeviceView:
    """One device of a ResourceSlice, as the ``device`` CEL variable exposes it.

    Instances are compared by identity; selectors cache results by the projection of the
    device onto the attributes an expression references, so identical GPUs cost one evaluation.
    ``gpupolicy.policy.cel`` also remembers, on each instance, its result per selector: treat a device and
    its attribute/capacity maps as immutable once built (make a new ``DeviceView`` instead).
    """

    driver: str
    attributes: Mapping[str, Mapping[str, AttributeValue]] = field(default_factory=dict)
    capacity: Mapping[str, Mapping[str, Quantity]] = field(default_factory=dict)
    allow_multiple_allocations: bool = False


def result_cache(device: DeviceView) -> dict[object, object]:
    """A per-device scratch dict for cached selector results (not a dataclass field: invisible to
    ``asdict``/``replace``/``repr``; it lives and dies with the device object)."""
    cache: dict[object, object] = device.__dict__.setdefault("_cel_results", {})
    return cache


def split_qualified(name: str, driver: str) -> tuple[str, str]:
    """``"resource.kubernetes.io/pciBusID"`` -> (domain, id); unqualified names belong to ``driver``.

    At the first slash, as Kubernetes' ``parseQualifiedName``: validation lets ``a/b/c`` through (domain ``a``)."""
    domain, sep, ident = name.partition("/")
    return (domain, ident) if sep else (driver, name)
