"""``load_policy``: parse, validate and compile a GpuPolicy file, reporting every error at once.

Order of checks: YAML (syntax, duplicate keys), the document's apiVersion/kind, the schema
(pydantic, all errors), every CEL expression (compiled once through :mod:`gpupolicy.policy.cel`, even when
the schema failed elsewhere), then cross-rule checks (unique names, known MIG profiles, layouts
that fit). All diagnostics are sorted by location and raised together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import ValidationError

from gpupolicy.policy import catalog
from gpupolicy.policy.errors import Diagnostic, DiagnosticError, Location, PathElement
from gpupolicy.policy.gpu import GpuInfo
from gpupolicy.policy.k8s.deviceclass import DeviceClass
from gpupolicy.policy.k8s.validation import validate_object
from gpupolicy.policy.modelbase import diagnostics_from_validation
from gpupolicy.policy.policyfile.compiled import (
    CompiledAdmission,
    CompiledPolicy,
    CompiledPreference,
    CompiledSharing,
    CompiledTier,
    Program,
    Rule,
    publish_from_rule,
)
from gpupolicy.policy.policyfile.model import API_VERSION, KIND, GpuPolicy, Mig
from gpupolicy.policy.yamlsrc import SourceDoc, parse_yaml

Path = tuple[PathElement, ...]

# (list key in spec, key of the expression inside an item, CEL environment)
_CEL_SITES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("sharing", ("selector",), "selector"),
    ("admission", ("expression",), "admission"),
    ("preferences", ("expression",), "admission"),
    ("priorityTiers", ("expression",), "admission"),
)


def _compile(expression: str, location: Location, env: str) -> Program:
    from gpupolicy.policy.cel import compile_expression  # the CEL engine loads only when a policy has CEL

    return compile_expression(expression, location, env=env)


def _items(spec: Any, key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    items = spec.get(key) if isinstance(spec, dict) else None
    if isinstance(items, list):
        for i, item in enumerate(items):
            if isinstance(item, dict):
                yield i, item


def _cel_expressions(doc: SourceDoc) -> Iterator[tuple[Path, str, str]]:
    """(path, expression, env) of every CEL expression in the raw document."""
    spec = doc.data.get("spec")
    for key, inner, env in _CEL_SITES:
        for i, item in _items(spec, key):
            value = item.get(inner[0])
            if isinstance(value, str):
                yield ("spec", key, i, inner[0]), value, env
    for i, item in _items(spec, "deviceClasses"):
        selectors = item.get("selectors")
        for j, sel in enumerate(selectors if isinstance(selectors, list) else []):
            cel = sel.get("cel") if isinstance(sel, dict) else None
            expr = cel.get("expression") if isinstance(cel, dict) else None
            if isinstance(expr, str):
                yield ("spec", "deviceClasses", i, "selectors", j, "cel", "expression"), expr, "selector"


def _compile_all(doc: SourceDoc, problems: list[Diagnostic]) -> dict[Path, Program]:
    programs: dict[Path, Program] = {}
    for path, expression, env in _cel_expressions(doc):
        try:
            programs[path] = _compile(expression, doc.locate(path), env)
        except DiagnosticError as err:
            problems.extend(err.diagnostics)
    return programs


def _duplicates(doc: SourceDoc, key: str, names: Sequence[str], field: str = "name") -> list[Diagnostic]:
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        if name in seen:
            out.append(
                Diagnostic(
                    "duplicate_name",
                    f"{key} {field} {name!r} is already used by {key}[{seen[name]}]",
                    doc.locate(("spec", key, i, field)),
                )
            )
        seen.setdefault(name, i)
    return out


def _mig_problems(doc: SourceDoc, index: int, mig: Mig) -> list[Diagnostic]:
    known = {p.name for m in catalog.all_models() for p in m.mig_profiles}
    out = []
    base: Path = ("spec", "sharing", index, "mig")
    for key, names in (("profiles", mig.profiles), ("layout", mig.layout or [])):
        for j, name in enumerate(names):
            if name not in known:
                out.append(
                    Diagnostic(
                        "unknown_mig_profile",
                        f"no GPU in the catalog has MIG profile {name!r}",
                        doc.locate((*base, key, j)),
                    )
                )
    if mig.layout and not out and not _layout_fits_somewhere(mig.layout):
        out.append(
            Diagnostic(
                "mig_layout_does_not_fit",
                f"layout {mig.layout} fits on no GPU model (overlapping placements or too many compute slices)",
                doc.locate((*base, "layout")),
            )
        )
    return out


def _layout_fits_somewhere(layout: Sequence[str]) -> bool:
    from gpupolicy.policy.builder_devices import planned_layout

    for model in catalog.all_models():
        names = {p.name for p in model.mig_profiles}
        if not set(layout) <= names:
            continue
        try:
            planned_layout(GpuInfo(model.name, 0, "", ""), tuple(layout))
            return True
        except ValueError:
            continue
    return False


def _semantic_problems(doc: SourceDoc, policy: GpuPolicy) -> list[Diagnostic]:
    spec = policy.spec
    out = _duplicates(doc, "deviceClasses", [c.name for c in spec.device_classes])
    out += _duplicates(doc, "sharing", [r.name for r in spec.sharing])
    out += _duplicates(doc, "admission", [r.name for r in spec.admission])
    out += _duplicates(doc, "preferences", [r.name for r in spec.preferences])
    out += _duplicates(doc, "priorityTiers", [r.name for r in spec.priority_tiers])
    out += _duplicates(doc, "quotas", [q.namespace for q in spec.quotas], field="namespace")
    for i, rule in enumerate(spec.sharing):
        if rule.mig is not None:
            out += _mig_problems(doc, i, rule.mig)
    return out


def _device_classes(doc: SourceDoc, policy: GpuPolicy, problems: list[Diagnostic]) -> tuple[DeviceClass, ...]:
    out = []
    for i, spec in enumerate(policy.spec.device_classes):
        wire = {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "DeviceClass",
            "metadata": {"name": spec.name},
            "spec": {
                k: v
                for k, v in spec.model_dump(by_alias=True, exclude_none=True, exclude={"name"}, mode="json").items()
                if v != []
            },
        }
        location = doc.locate(("spec", "deviceClasses", i))
        try:
            device_class = DeviceClass.model_validate(wire)
        except ValidationError as err:
            problems.extend(diagnostics_from_validation(err, SourceDoc(wire, doc.filename)))
            continue
        for d in validate_object(device_class, SourceDoc(wire, doc.filename)):
            problems.append(Diagnostic(d.code, f"{d.message} (DeviceClass {d.location.path})", location))
        out.append(device_class)
    return tuple(out)


def _rule(name: str, programs: dict[Path, Program], path: Path, doc: SourceDoc) -> Rule:
    return Rule(name, programs.get(path), doc.locate(path[:-1]))


def _assemble(doc: SourceDoc, policy: GpuPolicy, programs: dict[Path, Program], classes: Any) -> CompiledPolicy:
    spec = policy.spec
    sharing = tuple(
        CompiledSharing(_rule(r.name, programs, ("spec", "sharing", i, "selector"), doc), r, publish_from_rule(r))
        for i, r in enumerate(spec.sharing)
    )
    admission = tuple(
        CompiledAdmission(
            _rule(r.name, programs, ("spec", "admission", i, "expression"), doc), r.action == "Allow", r.message or ""
        )
        for i, r in enumerate(spec.admission)
    )
    preferences = tuple(
        CompiledPreference(_rule(p.name, programs, ("spec", "preferences", i, "expression"), doc), p.weight)
        for i, p in enumerate(spec.preferences)
    )
    tiers = tuple(
        CompiledTier(
            _rule(t.name, programs, ("spec", "priorityTiers", i, "expression"), doc),
            t.priority,
            frozenset(t.namespaces) if t.namespaces is not None else None,
            dict(t.match_labels or {}),
        )
        for i, t in enumerate(spec.priority_tiers)
    )
    return CompiledPolicy(
        source=policy,
        filename=doc.filename,
        device_classes=classes,
        sharing=sharing,
        admission=admission,
        preferences=preferences,
        tiers=tiers,
        quotas={q.namespace: q for q in spec.quotas},
    )


def _policy_doc(docs: Sequence[SourceDoc], filename: str) -> SourceDoc:
    policies = [d for d in docs if d.kind == KIND]
    problems = [
        Diagnostic("unexpected_kind", f"expected kind {KIND}, not {d.kind or 'nothing'}", d.locate(("kind",)))
        for d in docs
        if d.kind != KIND
    ]
    problems += [
        Diagnostic("multiple_policies", "a policy file holds exactly one GpuPolicy", d.locate(("kind",)))
        for d in policies[1:]
    ]
    if not policies:
        problems.append(Diagnostic("policy_missing", "no GpuPolicy document in the file", Location(filename, 1, 1)))
    elif policies[0].api_version != API_VERSION:
        problems.append(
            Diagnostic(
                "unknown_api_version",
                f"apiVersion must be {API_VERSION}, not {policies[0].api_version or 'nothing'}",
                policies[0].locate(("apiVersion",)),
            )
        )
    if problems:
        raise DiagnosticError(problems)
    return policies[0]


def compile_doc(doc: SourceDoc) -> CompiledPolicy:
    """Compile one already-parsed GpuPolicy document."""
    problems: list[Diagnostic] = []
    programs = _compile_all(doc, problems)
    try:
        policy = GpuPolicy.model_validate(doc.data)
    except ValidationError as err:
        problems.extend(diagnostics_from_validation(err, doc))
        raise DiagnosticError(problems) from None
    problems.extend(_semantic_problems(doc, policy))
    classes = _device_classes(doc, policy, problems)
    if problems:
        raise DiagnosticError(problems)
    return _assemble(doc, policy, programs, classes)


def load_policy(text: str, filename: str = "<input>") -> CompiledPolicy:
    """Parse, validate and compile a policy file; raise :class:`DiagnosticError` with every problem."""
    return compile_doc(_policy_doc(parse_yaml(text, filename), filename))
