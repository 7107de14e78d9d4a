"""Identifiers of Kubernetes DRA objects as distinct types, so a pool name is never passed as a device name."""

from __future__ import annotations

from typing import NamedTuple, NewType

DriverName = NewType("DriverName", str)
PoolName = NewType("PoolName", str)
DeviceName = NewType("DeviceName", str)
NodeName = NewType("NodeName", str)
Namespace = NewType("Namespace", str)
ClaimName = NewType("ClaimName", str)
ClaimUID = NewType("ClaimUID", str)
PodUID = NewType("PodUID", str)
DeviceClassName = NewType("DeviceClassName", str)
RequestName = NewType("RequestName", str)
"""A request name as other fields reference it: ``gpu`` or ``gpu/small`` for a subrequest."""
QualifiedName = NewType("QualifiedName", str)
"""An attribute or capacity name, ``memory`` or ``gpu.nvidia.com/memory``."""
FullyQualifiedName = NewType("FullyQualifiedName", str)
CounterSetName = NewType("CounterSetName", str)
ShareID = NewType("ShareID", str)


class DeviceID(NamedTuple):
    """The unique identity of a device: ``<driver>/<pool>/<device>``."""

    driver: DriverName
    pool: PoolName
    device: DeviceName

    def __str__(self) -> str:
        return f"{self.driver}/{self.pool}/{self.device}"


class PoolID(NamedTuple):
    driver: DriverName
    pool: PoolName

    def __str__(self) -> str:
        return f"{self.driver}/{self.pool}"


class ClaimRef(NamedTuple):
    """A namespaced object reference, printed ``namespace/name``."""

    namespace: Namespace
    name: ClaimName

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"
