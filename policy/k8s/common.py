"""DRA building blocks shared by DeviceClass, ResourceClaim and ResourceSlice."""

from __future__ import annotations

from typing import Any, Literal

from gpupolicy.policy.k8s.base import Int, K8sModel, Str, Time

API_GROUP = "resource.k8s.io"
API_VERSION = "resource.k8s.io/v1"

TaintEffect = Literal["None", "NoSchedule", "NoExecute"]
TolerationOperator = Literal["Exists", "Equal"]


class CELDeviceSelector(K8sModel):
    expression: Str


class DeviceSelector(K8sModel):
    """Exactly one field must be set; today that is ``cel``."""

    cel: CELDeviceSelector | None = None


class OpaqueDeviceConfiguration(K8sModel):
    driver: Str
    parameters: Any
    """Any JSON object (checked by validation: an object, at most 10 KiB as JSON)."""


class DeviceClassConfiguration(K8sModel):
    opaque: OpaqueDeviceConfiguration | None = None


class DeviceToleration(K8sModel):
    key: Str | None = None
    operator: Literal["Exists", "Equal", ""] | None = None
    """Unset or empty means ``Equal`` (the API server's default)."""
    value: Str | None = None
    effect: Literal["None", "NoSchedule", "NoExecute", ""] | None = None
    """Unset or empty: every effect."""
    toleration_seconds: Int | None = None

    @property
    def effective_operator(self) -> TolerationOperator:
        return self.operator or "Equal"


class DeviceTaint(K8sModel):
    key: Str
    value: Str | None = None
    effect: TaintEffect
    time_added: Time | None = None


def toleration_tolerates(toleration: DeviceToleration, taint: DeviceTaint) -> bool:
    """Whether ``toleration`` tolerates ``taint``.

    Kubernetes' ``resourceclaim.ToleratesTaint`` (k8s.io/dynamic-resource-allocation v0.37.2): a set effect must
    equal the taint's; an empty key matches every key; ``Equal`` (the default) compares values, ``Exists`` ignores
    them. Whether the taint's effect blocks allocation at all is the caller's business.
    """
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.effective_operator == "Exists":
        return True
    return (toleration.value or "") == (taint.value or "")
