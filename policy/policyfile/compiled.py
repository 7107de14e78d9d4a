"""A policy ready to use: CEL compiled once, rules in order, each with its source location."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.errors import DiagnosticError, Location
from gpupolicy.policy.gpu import GpuInfo, Mode, Publish
from gpupolicy.policy.k8s.claim import RequestFields, ResourceClaim
from gpupolicy.policy.k8s.deviceclass import DeviceClass
from gpupolicy.policy.policyfile.model import GpuPolicy, Quota, SharingRule, SolverLimits

MIB = 1024 * 1024


class Program(Protocol):
    """What :mod:`gpupolicy.policy.cel` returns for a compiled expression."""

    def evaluate(
        self,
        device: DeviceView | None = None,
        *,
        claim: Mapping[str, object] | None = None,
        request: Mapping[str, object] | None = None,
    ) -> bool: ...


@dataclass(frozen=True)
class ClaimInfo:
    """The parts of a ResourceClaim that admission rules and priority tiers look at."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_claim(cls, claim: ResourceClaim) -> ClaimInfo:
        meta = claim.metadata
        return cls(meta.namespace_or_default, meta.name or "", meta.labels or {}, meta.annotations or {})

    def cel(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
        }


@dataclass(frozen=True)
class RequestInfo:
    """One request (or subrequest) of a claim, as admission rules see it."""

    name: str
    device_class_name: str
    count: int = 1
    allocation_mode: str = "ExactCount"
    capacity: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_fields(cls, name: str, fields: RequestFields) -> RequestInfo:
        requests = fields.capacity.requests if fields.capacity and fields.capacity.requests else {}
        return cls(name, fields.device_class_name, fields.effective_count, fields.mode, dict(requests))

    def cel(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "deviceClassName": self.device_class_name,
            "count": self.count,
            "allocationMode": self.allocation_mode,
            "capacity": dict(self.capacity),
        }


@dataclass(frozen=True)
class Rule:
    """A compiled rule: its program and where it was written."""

    name: str
    program: Program | None
    location: Location


@dataclass(frozen=True)
class CompiledSharing:
    rule: Rule
    spec: SharingRule
    publish: Publish


@dataclass(frozen=True)
class CompiledAdmission:
    rule: Rule
    allow: bool
    message: str


@dataclass(frozen=True)
class CompiledPreference:
    rule: Rule
    weight: int


@dataclass(frozen=True)
class CompiledTier:
    rule: Rule
    priority: int
    namespaces: frozenset[str] | None
    match_labels: Mapping[str, str]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str = ""
    message: str = ""
    location: Location | None = None


def _true(
    rule: Rule, device: DeviceView | None, claim: ClaimInfo | None = None, request: RequestInfo | None = None
) -> bool:
    """Evaluate a rule; no expression means "always". A CEL run-time error is an error, never false."""
    if rule.program is None:
        return True
    try:
        return rule.program.evaluate(
            device,
            claim=claim.cel() if claim is not None else None,
            request=request.cel() if request is not None else None,
        )
    except Exception as err:  # gpupolicy.policy.cel.CelRuntimeError; imported lazily with the CEL engine
        code = getattr(err, "code", "cel_runtime_error")
        subject = f"claim {claim.namespace}/{claim.name}: " if claim is not None else ""
        raise DiagnosticError.single(code, f"{subject}rule {rule.name!r}: {err}", rule.location) from None


def publish_from_rule(spec: SharingRule) -> Publish:
    name = spec.name
    if spec.time_slicing is not None:
        ts = spec.time_slicing
        return Publish(Mode.TIME_SLICING, name, shares=ts.replicas, time_slice_interval=ts.interval)
    if spec.mps is not None:
        pinned = spec.mps.default_pinned_device_memory_limit
        pinned_bytes = pinned.ceil_integer() if pinned is not None else None
        return Publish(
            Mode.MPS,
            name,
            shares=spec.mps.max_clients,
            memory_default_bytes=pinned_bytes or 0,
            mps_active_thread_percentage=spec.mps.default_active_thread_percentage,
            mps_pinned_memory_bytes=pinned_bytes,
        )
    if spec.shares is not None:
        mem = spec.shares.default_memory
        default = mem.ceil_integer() if mem is not None else 0
        return Publish(Mode.SHARES, name, shares=spec.shares.count, memory_default_bytes=default)
    if spec.mig is not None:
        return Publish(
            Mode.MIG,
            name,
            mig_dynamic=spec.mig.dynamic,
            mig_profiles=tuple(spec.mig.profiles),
            mig_layout=tuple(spec.mig.layout or ()),
        )
    return Publish(Mode.EXCLUSIVE, name)


@dataclass(frozen=True)
class CompiledPolicy:
    """Everything the solver and the plugin need from a policy file."""

    source: GpuPolicy
    filename: str
    device_classes: tuple[DeviceClass, ...]
    sharing: tuple[CompiledSharing, ...]
    admission: tuple[CompiledAdmission, ...]
    preferences: tuple[CompiledPreference, ...]
    tiers: tuple[CompiledTier, ...]
    quotas: Mapping[str, Quota]

    @property
    def name(self) -> str:
        return self.source.metadata.name

    @property
    def driver_name(self) -> str:
        return self.source.spec.driver_name

    @property
    def objective(self) -> str:
        return self.source.spec.objective

    @property
    def solver_limits(self) -> SolverLimits:
        return self.source.spec.solver

    def sharing_rule_for(self, device: DeviceView) -> CompiledSharing | None:
        """The first sharing rule whose selector matches the (full-GPU) device, if any."""
        for compiled in self.sharing:
            if _true(compiled.rule, device):
                return compiled
        return None

    def publish_for(self, gpu: GpuInfo, device: DeviceView) -> Publish:
        """How to publish ``gpu``: the first matching rule's sharing, else exclusive.
        Fits ``gpupolicy.policy.builder``."""
        del gpu
        compiled = self.sharing_rule_for(device)
        return compiled.publish if compiled is not None else Publish()

    def admit(self, claim: ClaimInfo, request: RequestInfo, device: DeviceView) -> Decision:
        """Whether ``request`` of ``claim`` may use ``device``: the first matching admission rule decides."""
        for compiled in self.admission:
            if _true(compiled.rule, device, claim, request):
                return Decision(compiled.allow, compiled.rule.name, compiled.message, compiled.rule.location)
        return Decision(self.source.spec.admission_default == "Allow")

    def preference_score(self, claim: ClaimInfo, request: RequestInfo, device: DeviceView) -> int:
        """Sum of the weights of the preferences that hold for this (claim, request, device)."""
        return sum(p.weight for p in self.preferences if _true(p.rule, device, claim, request))

    def priority_of(self, claim: ClaimInfo) -> tuple[str, int]:
        """(tier name, priority) of the first tier the claim matches; ("", 0) when none does."""
        for tier in self.tiers:
            if tier.namespaces is not None and claim.namespace not in tier.namespaces:
                continue
            if any(claim.labels.get(k) != v for k, v in tier.match_labels.items()):
                continue
            if not _true(tier.rule, None, claim, None):
                continue
            return tier.rule.name, tier.priority
        return "", 0

    def quota_for(self, namespace: str) -> Quota | None:
        return self.quotas.get(namespace)
