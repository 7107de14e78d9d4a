"""The ``GpuPolicy`` file (``apiVersion: gpupolicy.dev/v1alpha1``) as strict pydantic models.

Field names are camelCase on the wire only; unknown fields are errors. Cross-field rules
(exactly one sharing mode per rule, ranges, unique names) are validators that raise
``ValueError("<code>: <message>")`` so each problem gets a stable code and a location.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator, model_validator
from pydantic.alias_generators import to_camel

from gpupolicy.policy.k8s import names
from gpupolicy.policy.modelbase import StrictModel
from gpupolicy.policy.quantity import Quantity, QuantityField

API_VERSION = "gpupolicy.dev/v1alpha1"
KIND = "GpuPolicy"
DEFAULT_DRIVER = "gpu.gpupolicy.dev"
MIB = 1024 * 1024


class PolicyModel(StrictModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=False,
        validate_by_name=False,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


def _check_dns_label(value: str, what: str) -> str:
    problems = names.dns1123_label(value)
    if problems:
        raise ValueError(f"invalid_name: {what} {value!r}: {'; '.join(problems)}")
    return value


def _check_subdomain(value: str, what: str) -> str:
    problems = names.dns1123_subdomain(value)
    if problems:
        raise ValueError(f"invalid_name: {what} {value!r}: {'; '.join(problems)}")
    return value


class Metadata(PolicyModel):
    name: StrictStr
    labels: dict[StrictStr, StrictStr] | None = None
    annotations: dict[StrictStr, StrictStr] | None = None


class CelSelector(PolicyModel):
    expression: StrictStr


class Selector(PolicyModel):
    cel: CelSelector


class OpaqueConfig(PolicyModel):
    driver: StrictStr
    parameters: dict[str, Any]


class ClassConfig(PolicyModel):
    opaque: OpaqueConfig


class DeviceClassSpec(PolicyModel):
    """One DeviceClass the policy emits, exactly as ``resource.k8s.io/v1`` has it."""

    name: StrictStr
    selectors: list[Selector] = Field(default_factory=list)
    config: list[ClassConfig] = Field(default_factory=list)
    extended_resource_name: StrictStr | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_subdomain(value, "DeviceClass name")


class Exclusive(PolicyModel):
    pass


class TimeSlicing(PolicyModel):
    interval: Literal["Default", "Short", "Medium", "Long"] = "Default"
    replicas: StrictInt | None = None

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 256:
            raise ValueError(f"out_of_range: replicas must be between 1 and 256, not {value}")
        return value


class Mps(PolicyModel):
    max_clients: StrictInt = 16
    default_active_thread_percentage: StrictInt | None = None
    default_pinned_device_memory_limit: QuantityField | None = None

    @field_validator("max_clients")
    @classmethod
    def _clients(cls, value: int) -> int:
        if not 1 <= value <= 48:
            raise ValueError(f"out_of_range: maxClients must be between 1 and 48, not {value}")
        return value

    @field_validator("default_active_thread_percentage")
    @classmethod
    def _percent(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 100:
            raise ValueError(f"out_of_range: defaultActiveThreadPercentage must be between 0 and 100, not {value}")
        return value

    @field_validator("default_pinned_device_memory_limit")
    @classmethod
    def _pinned(cls, value: Quantity | None) -> Quantity | None:
        if value is not None and value < Quantity.from_int(MIB, binary=True):
            raise ValueError(f"out_of_range: defaultPinnedDeviceMemoryLimit must be at least 1Mi, not {value}")
        return value


class Mig(PolicyModel):
    profiles: list[StrictStr] = Field(default_factory=list)
    layout: list[StrictStr] | None = None
    dynamic: StrictBool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Mig:
        if self.dynamic and self.layout is not None:
            raise ValueError("mig_layout_conflict: set either dynamic: true or a static layout, not both")
        if self.layout is not None and self.profiles:
            extra = sorted(set(self.layout) - set(self.profiles))
            if extra:
                raise ValueError(f"mig_profile_not_allowed: layout uses {extra}, not in profiles")
        return self


class Shares(PolicyModel):
    count: StrictInt
    default_memory: QuantityField | None = None

    @field_validator("count")
    @classmethod
    def _count(cls, value: int) -> int:
        if not 1 <= value <= 1000:
            raise ValueError(f"out_of_range: count must be between 1 and 1000, not {value}")
        return value


SHARING_MODES = ("exclusive", "time_slicing", "mps", "mig", "shares")


class SharingRule(PolicyModel):
    """Rules are tried in order; the first whose selector matches a GPU decides its sharing."""

    name: StrictStr
    selector: StrictStr | None = None
    exclusive: Exclusive | None = None
    time_slicing: TimeSlicing | None = None
    mps: Mps | None = None
    mig: Mig | None = None
    shares: Shares | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> SharingRule:
        chosen = [m for m in SHARING_MODES if getattr(self, m) is not None]
        if len(chosen) != 1:
            wire = ", ".join(to_camel(m) for m in SHARING_MODES)
            got = ", ".join(to_camel(m) for m in chosen) or "none"
            raise ValueError(f"sharing_mode_count: a sharing rule sets exactly one of {wire} (got {got})")
        return self

    @property
    def mode_name(self) -> str:
        return next(m for m in SHARING_MODES if getattr(self, m) is not None)


class AdmissionRule(PolicyModel):
    """First matching rule decides; ``expression`` sees ``claim``, ``request`` and ``device``."""

    name: StrictStr
    action: Literal["Allow", "Deny"]
    expression: StrictStr
    message: StrictStr | None = None


class Preference(PolicyModel):
    name: StrictStr
    weight: StrictInt
    expression: StrictStr

    @field_validator("weight")
    @classmethod
    def _weight(cls, value: int) -> int:
        if value == 0 or not -1000 <= value <= 1000:
            raise ValueError(f"out_of_range: weight must be a non-zero integer between -1000 and 1000, not {value}")
        return value


class PriorityTier(PolicyModel):
    """Claims in ``namespaces`` (any), with all ``matchLabels`` and matching ``expression`` get ``priority``."""

    name: StrictStr
    priority: StrictInt
    namespaces: list[StrictStr] | None = None
    match_labels: dict[StrictStr, StrictStr] | None = None
    expression: StrictStr | None = None

    @field_validator("priority")
    @classmethod
    def _priority(cls, value: int) -> int:
        if not -1_000_000 <= value <= 1_000_000:
            raise ValueError(f"out_of_range: priority must be between -1000000 and 1000000, not {value}")
        return value


class Quota(PolicyModel):
    namespace: StrictStr
    gpus: StrictInt | None = None
    mig_compute_slices: StrictInt | None = None
    gpu_memory: QuantityField | None = None

    @field_validator("gpus", "mig_compute_slices")
    @classmethod
    def _non_negative(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError(f"out_of_range: must not be negative, not {value}")
        return value

    @field_validator("gpu_memory")
    @classmethod
    def _memory(cls, value: Quantity | None) -> Quantity | None:
        if value is not None and value.sign() < 0:
            raise ValueError(f"out_of_range: gpuMemory must not be negative, not {value}")
        return value


MAX_TIME_LIMIT_SECONDS = 3600  # the solver's time limit is in (0, 3600] seconds
MAX_WORKERS = 64  # CP-SAT workers: 1..64
MAX_SEED = 2**31 - 1  # CP-SAT's random_seed is an int32: 0..2**31-1


class SolverLimits(PolicyModel):
    time_limit_seconds: float = 10.0
    workers: StrictInt = 1
    seed: StrictInt = 0

    @field_validator("time_limit_seconds", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("invalid_type: timeLimitSeconds must be a number")
        if not 0 < value <= MAX_TIME_LIMIT_SECONDS:
            raise ValueError(f"out_of_range: timeLimitSeconds must be in (0, {MAX_TIME_LIMIT_SECONDS}], not {value}")
        return value

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: int) -> int:
        if not 1 <= value <= MAX_WORKERS:
            raise ValueError(f"out_of_range: workers must be between 1 and {MAX_WORKERS}, not {value}")
        return value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int) -> int:
        if not 0 <= value <= MAX_SEED:
            raise ValueError(f"out_of_range: seed must be between 0 and {MAX_SEED}, not {value}")
        return value


Objective = Literal["pack", "spread", "least-fragmentation"]


class PolicySpec(PolicyModel):
    driver_name: StrictStr = DEFAULT_DRIVER
    device_classes: list[DeviceClassSpec] = Field(default_factory=list)
    sharing: list[SharingRule] = Field(default_factory=list)
    admission: list[AdmissionRule] = Field(default_factory=list)
    admission_default: Literal["Allow", "Deny"] = "Allow"
    preferences: list[Preference] = Field(default_factory=list)
    objective: Objective = "pack"
    priority_tiers: list[PriorityTier] = Field(default_factory=list)
    quotas: list[Quota] = Field(default_factory=list)
    solver: SolverLimits = Field(default_factory=SolverLimits)

    @field_validator("driver_name")
    @classmethod
    def _driver(cls, value: str) -> str:
        if len(value) > 63:
            raise ValueError(f"invalid_name: driverName {value!r} is longer than 63 characters")
        return _check_subdomain(value, "driverName")


class GpuPolicy(PolicyModel):
    api_version: Literal["gpupolicy.dev/v1alpha1"]
    kind: Literal["GpuPolicy"]
    metadata: Metadata
    spec: PolicySpec
