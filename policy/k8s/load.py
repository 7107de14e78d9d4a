"""Reading Kubernetes objects from located YAML documents into typed, validated models.

``load_objects`` dispatches on ``apiVersion``/``kind``, converts beta versions to v1, checks the
schema (pydantic) and then the API server's rules, and groups the valid objects by kind. Every
object remembers the document it came from, so later errors (a selector that fails, a claim
that cannot be placed) can point into the user's file.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from gpupolicy.policy.errors import Diagnostic, DiagnosticError, sorted_diagnostics
from gpupolicy.policy.k8s.claim import ResourceClaim, ResourceClaimTemplate
from gpupolicy.policy.k8s.convert import RESOURCE_KINDS, RESOURCE_VERSIONS, ConvertedDoc, convert_doc, is_resource_api
from gpupolicy.policy.k8s.deviceclass import DeviceClass
from gpupolicy.policy.k8s.pdb import PodDisruptionBudget
from gpupolicy.policy.k8s.pod import WORKLOAD_API_VERSIONS, Pod, Workload
from gpupolicy.policy.k8s.slice import ResourceSlice
from gpupolicy.policy.k8s.validation import validate_object
from gpupolicy.policy.modelbase import diagnostics_from_validation
from gpupolicy.policy.yamlsrc import SourceDoc, parse_yaml

T = TypeVar("T", bound=BaseModel)

_RESOURCE_MODELS: dict[str, type[BaseModel]] = {
    "DeviceClass": DeviceClass,
    "ResourceClaim": ResourceClaim,
    "ResourceClaimTemplate": ResourceClaimTemplate,
    "ResourceSlice": ResourceSlice,
}
SUPPORTED_KINDS = (*RESOURCE_KINDS, "Pod", *WORKLOAD_API_VERSIONS, "PodDisruptionBudget")


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """A validated object and the document it came from (``doc.locate`` takes v1 key paths)."""

    obj: T
    doc: ConvertedDoc

    @property
    def source_version(self) -> str:
        """The apiVersion as written in the file (the object itself is always v1)."""
        return self.doc.source_version


@dataclass
class LoadResult:
    device_classes: list[Loaded[DeviceClass]] = field(default_factory=list)
    claims: list[Loaded[ResourceClaim]] = field(default_factory=list)
    claim_templates: list[Loaded[ResourceClaimTemplate]] = field(default_factory=list)
    slices: list[Loaded[ResourceSlice]] = field(default_factory=list)
    pods: list[Loaded[Pod]] = field(default_factory=list)
    workloads: list[Loaded[Workload]] = field(default_factory=list)
    budgets: list[Loaded[PodDisruptionBudget]] = field(default_factory=list)
    skipped: list[SourceDoc] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diagnostics

    def raise_for_errors(self) -> None:
        if self.diagnostics:
            raise DiagnosticError(self.diagnostics)

    def objects(self) -> Iterator[Loaded[Any]]:
        """Every loaded object, kinds in a fixed order, each kind in file order."""
        yield from self.device_classes
        yield from self.claim_templates
        yield from self.claims
        yield from self.slices
        yield from self.pods
        yield from self.workloads
        yield from self.budgets

    def _add(self, loaded: Loaded[Any]) -> None:
        obj = loaded.obj
        target: list[Any]
        if isinstance(obj, DeviceClass):
            target = self.device_classes
        elif isinstance(obj, ResourceClaim):
            target = self.claims
        elif isinstance(obj, ResourceClaimTemplate):
            target = self.claim_templates
        elif isinstance(obj, ResourceSlice):
            target = self.slices
        elif isinstance(obj, Pod):
            target = self.pods
        elif isinstance(obj, PodDisruptionBudget):
            target = self.budgets
        else:
            target = self.workloads
        target.append(loaded)


def _model_for(doc: SourceDoc) -> tuple[type[BaseModel] | None, Diagnostic | None]:
    api_version, kind = doc.data.get("apiVersion"), doc.data.get("kind")
    if not isinstance(api_version, str) or not api_version:
        return None, Diagnostic("missing_field", "apiVersion is required", doc.locate(("apiVersion",)))
    if not isinstance(kind, str) or not kind:
        return None, Diagnostic("missing_field", "kind is required", doc.locate(("kind",)))
    if kind in _RESOURCE_MODELS and is_resource_api(api_version):
        return _RESOURCE_MODELS[kind], None
    if kind == "Pod" and api_version == "v1":
        return Pod, None
    if WORKLOAD_API_VERSIONS.get(kind) == api_version:
        return Workload, None
    if kind == "PodDisruptionBudget" and api_version == "policy/v1":
        return PodDisruptionBudget, None
    if kind in _RESOURCE_MODELS and api_version.startswith("resource.k8s.io/"):
        versions = ", ".join(f"resource.k8s.io/{v}" for v in RESOURCE_VERSIONS)
        message = f"apiVersion {api_version} of {kind} is not supported; use one of {versions}"
    else:
        message = f"{api_version} {kind} is not a kind gpupolicy reads (supported: {', '.join(SUPPORTED_KINDS)})"
    return None, Diagnostic("unknown_kind", message, doc.locate(("kind",)))


def load_doc(doc: SourceDoc) -> tuple[Loaded[Any] | None, list[Diagnostic]]:
    """Load one document: the object (None when invalid or of an unknown kind) and its diagnostics."""
    model, problem = _model_for(doc)
    if model is None:
        return None, [problem] if problem else []
    conversion = convert_doc(doc)
    converted = conversion.doc
    try:
        obj = model.model_validate(converted.data)
    except ValidationError as exc:
        return None, conversion.diagnostics + diagnostics_from_validation(exc, converted)
    except (RecursionError, ValueError, TypeError) as exc:
        return None, [Diagnostic("invalid_value", f"cannot read object: {exc}", converted.locate(()))]
    problems = conversion.diagnostics + validate_object(obj, converted)
    return (None if problems else Loaded(obj, converted)), problems


def load_objects(
    docs: Sequence[SourceDoc], *, skip_unknown: bool = False, kinds: Collection[str] | None = None
) -> LoadResult:
    """Load every document; ``skip_unknown`` puts kinds we do not read into ``skipped`` instead of
    reporting ``unknown_kind``; ``kinds`` restricts what is loaded (others are skipped)."""
    result = LoadResult()
    for doc in docs:
        kind = doc.kind
        if kinds is not None and kind not in kinds:
            result.skipped.append(doc)
            continue
        loaded, problems = load_doc(doc)
        if skip_unknown and any(p.code == "unknown_kind" for p in problems):
            result.skipped.append(doc)
            continue
        result.diagnostics.extend(problems)
        if loaded is not None:
            result._add(loaded)
    result.diagnostics = sorted_diagnostics(result.diagnostics)
    return result


def load_text(text: str, filename: str = "<input>", *, skip_unknown: bool = False) -> LoadResult:
    """Parse YAML text and load its objects; YAML errors become diagnostics of the result."""
    try:
        docs = parse_yaml(text, filename)
    except DiagnosticError as err:
        return LoadResult(diagnostics=list(err.diagnostics))
    return load_objects(docs, skip_unknown=skip_unknown)
