"""Checks across objects of one load: names that must exist elsewhere, objects defined twice.

The API server cannot check these (a claim may name a class created later), but a set of files
meant to describe a whole cluster can: ``gpupolicy validate`` uses them so a typo in a device
class name is an error at its line rather than a claim that never gets allocated.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gpupolicy.policy.errors import Diagnostic, sorted_diagnostics
from gpupolicy.policy.k8s.checker import Path
from gpupolicy.policy.k8s.claim import ResourceClaimSpec
from gpupolicy.policy.k8s.load import Loaded, LoadResult
from gpupolicy.policy.k8s.pod import PodSpec

Refs = set[tuple[str, str | None]]


def check_references(result: LoadResult, *, device_classes: Iterable[str] = ()) -> list[Diagnostic]:
    """Unknown device classes, claims and claim templates, and objects defined twice.

    ``device_classes`` names classes that exist without being in the files (e.g. in the cluster).
    """
    out: list[Diagnostic] = []
    classes = {c.obj.name for c in result.device_classes} | set(device_classes)
    for loaded in result.claims:
        out += _class_refs(loaded, loaded.obj.spec, ("spec", "devices", "requests"), classes)
    for template in result.claim_templates:
        out += _class_refs(template, template.obj.spec.spec, ("spec", "spec", "devices", "requests"), classes)
    claims: Refs = {(str(c.obj.metadata.namespace_or_default), c.obj.metadata.name) for c in result.claims}
    templates: Refs = {(str(t.obj.metadata.namespace_or_default), t.obj.metadata.name) for t in result.claim_templates}
    for pod in result.pods:
        out += _pod_refs(pod, pod.obj.spec, ("spec",), claims, templates)
    for workload in result.workloads:
        out += _pod_refs(workload, workload.obj.spec.template.spec, ("spec", "template", "spec"), claims, templates)
    out += _duplicates(result)
    return sorted_diagnostics(out)


def _class_refs(loaded: Loaded[Any], spec: ResourceClaimSpec, path: Path, classes: set[str]) -> list[Diagnostic]:
    out = []
    for i, request in enumerate(spec.requests):
        candidates: list[tuple[Path, str]] = []
        if request.exactly is not None:
            candidates.append(((*path, i, "exactly", "deviceClassName"), request.exactly.device_class_name))
        for j, sub in enumerate(request.first_available or ()):
            candidates.append(((*path, i, "firstAvailable", j, "deviceClassName"), sub.device_class_name))
        out += [
            Diagnostic("unknown_reference", f"device class {name!r} is not defined", loaded.doc.locate(where))
            for where, name in candidates
            if name not in classes
        ]
    return out


def _pod_refs(
    loaded: Loaded[Any],
    spec: PodSpec,
    path: Path,
    claims: Refs,
    templates: Refs,
) -> list[Diagnostic]:
    namespace = str(loaded.obj.metadata.namespace_or_default)
    out = []
    for i, claim in enumerate(spec.resource_claims or ()):
        where = loaded.doc.locate((*path, "resourceClaims", i))
        if claim.resource_claim_name and (namespace, claim.resource_claim_name) not in claims:
            out.append(
                Diagnostic(
                    "unknown_reference", f"ResourceClaim {namespace}/{claim.resource_claim_name} is not defined", where
                )
            )
        name = claim.resource_claim_template_name
        if name and (namespace, name) not in templates:
            out.append(
                Diagnostic("unknown_reference", f"ResourceClaimTemplate {namespace}/{name} is not defined", where)
            )
    return out


def _duplicates(result: LoadResult) -> list[Diagnostic]:
    seen: set[tuple[str, str, str | None]] = set()
    out = []
    for loaded in result.objects():
        meta = loaded.obj.metadata
        if not meta.name:
            continue
        key = (loaded.obj.kind, meta.namespace_or_default, meta.name)
        if key in seen:
            where = loaded.doc.locate(("metadata", "name"))
            out.append(Diagnostic("duplicate_name", f"{loaded.obj.kind} {meta.name} is defined more than once", where))
        seen.add(key)
    return out
