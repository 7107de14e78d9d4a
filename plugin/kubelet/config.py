"""Opaque device configuration for this driver, from DeviceClasses and ResourceClaims.

Accepted ``parameters`` (strict: unknown fields are errors)::

    apiVersion: resource.gpupolicy.dev/v1alpha1   # or resource.nvidia.com/v1beta1 (drop-in)
    kind: GpuConfig                               # full GPUs; MigDeviceConfig for MIG devices
    sharing:
      strategy: TimeSlicing | MPS
      timeSlicingConfig: {interval: Default|Short|Medium|Long}      # full GPUs only
      mpsConfig: {defaultActiveThreadPercentage: 0..100, defaultPinnedDeviceMemoryLimit: 10Gi}

``allocation.devices.config`` lists class configs before claim configs; each applies to the
requests it names (none = all) and a later one overrides an earlier one for the same device.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from gpupolicy.policy.k8s.base import K8sModel
from gpupolicy.policy.quantity import Quantity, QuantityError

API_VERSIONS = ("resource.gpupolicy.dev/v1alpha1", "resource.nvidia.com/v1beta1")


class TimeSlicingConfig(K8sModel):
    interval: Literal["Default", "Short", "Medium", "Long"] = "Default"


class MpsConfig(K8sModel):
    default_active_thread_percentage: int | None = Field(None, ge=0, le=100)
    default_pinned_device_memory_limit: str | None = None

    @field_validator("default_pinned_device_memory_limit")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            amount = Quantity.parse(value).as_integer()
        except QuantityError as exc:
            raise ValueError(f"invalid_quantity: {exc}") from None
        if amount < 2**20:
            raise ValueError("invalid_value: defaultPinnedDeviceMemoryLimit must be at least 1Mi")
        return value


class Sharing(K8sModel):
    strategy: Literal["TimeSlicing", "MPS"]
    time_slicing_config: TimeSlicingConfig | None = None
    mps_config: MpsConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Sharing:
        if self.strategy == "TimeSlicing" and self.mps_config is not None:
            raise ValueError("invalid_value: mpsConfig is set but strategy is TimeSlicing")
        if self.strategy == "MPS" and self.time_slicing_config is not None:
            raise ValueError("invalid_value: timeSlicingConfig is set but strategy is MPS")
        return self


class DeviceConfig(K8sModel):
    api_version: str
    kind: Literal["GpuConfig", "MigDeviceConfig"]
    sharing: Sharing | None = None

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value not in API_VERSIONS:
            raise ValueError(f"invalid_value: apiVersion must be one of {', '.join(API_VERSIONS)}")
        return value


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class SourcedConfig:
    source: str
    requests: tuple[str, ...]
    config: DeviceConfig


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "parameters"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def parse_configs(driver: str, entries: Iterable[Mapping[str, Any]]) -> list[SourcedConfig]:
    """This driver's opaque configs of an allocation, class configs first; ``ConfigError`` if one is invalid."""
    ordered = sorted(enumerate(entries), key=lambda e: (e[1].get("source") != "FromClass", e[0]))
    out = []
    for index, entry in ordered:
        opaque = entry.get("opaque") or {}
        if opaque.get("driver") != driver:
            continue
        try:
            config = DeviceConfig.model_validate(opaque.get("parameters"))
        except ValidationError as exc:
            raise ConfigError(f"invalid opaque config #{index} ({entry.get('source')}): {_describe(exc)}") from None
        out.append(SourcedConfig(str(entry.get("source")), tuple(entry.get("requests") or ()), config))
    return out


def _matches(requests: tuple[str, ...], request: str) -> bool:
    parent = request.split("/", 1)[0]
    return not requests or request in requests or parent in requests


def config_for(configs: list[SourcedConfig], request: str, mig: bool) -> DeviceConfig | None:
    """The config for a device of ``request``: the last one naming the request (or none) of the device's
    kind (``GpuConfig`` for full GPUs, ``MigDeviceConfig`` for MIG devices; others do not apply)."""
    kind = "MigDeviceConfig" if mig else "GpuConfig"
    chosen = None
    for entry in configs:
        if _matches(entry.requests, request) and entry.config.kind == kind:
            chosen = entry.config
    if chosen and mig and chosen.sharing and chosen.sharing.strategy == "TimeSlicing":
        raise ConfigError(f"request {request!r}: time-slicing applies to full GPUs only, not MIG devices")
    return chosen
