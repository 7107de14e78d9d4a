"""API-server validation of a parsed object: one entry point for every kind ``gpupolicy.policy.k8s`` reads.

Structure (types, unknown and missing fields, enum values) is checked by the pydantic models;
this module adds what the API server checks beyond the schema: name formats, list limits,
one-of groups, references between fields. All problems are collected, none stops the others.
"""

from __future__ import annotations

from pydantic import BaseModel

from gpupolicy.policy.errors import Diagnostic
from gpupolicy.policy.k8s import names
from gpupolicy.policy.k8s.checker import Checker, Path
from gpupolicy.policy.k8s.claim import ResourceClaim, ResourceClaimTemplate
from gpupolicy.policy.k8s.deviceclass import DeviceClass
from gpupolicy.policy.k8s.pdb import PodDisruptionBudget, check_pod_disruption_budget
from gpupolicy.policy.k8s.pod import Pod, PodSpec, Workload
from gpupolicy.policy.k8s.slice import ResourceSlice
from gpupolicy.policy.k8s.validate_claim import check_device_class, check_resource_claim, check_resource_claim_template
from gpupolicy.policy.k8s.validate_common import check_meta
from gpupolicy.policy.k8s.validate_slice import check_resource_slice
from gpupolicy.policy.yamlsrc import SourceDoc


def validate_object(obj: BaseModel, doc: SourceDoc) -> list[Diagnostic]:
    """Every API-server rule ``obj`` breaks, located in ``doc`` (empty when valid)."""
    c = Checker(doc)
    if isinstance(obj, DeviceClass):
        check_device_class(c, obj)
    elif isinstance(obj, ResourceClaim):
        check_resource_claim(c, obj)
    elif isinstance(obj, ResourceClaimTemplate):
        check_resource_claim_template(c, obj)
    elif isinstance(obj, ResourceSlice):
        check_resource_slice(c, obj)
    elif isinstance(obj, Pod):
        check_meta(c, obj.metadata, namespaced=True, name_rule=names.dns1123_subdomain)
        check_pod_spec(c, obj.spec, ("spec",))
    elif isinstance(obj, PodDisruptionBudget):
        check_meta(c, obj.metadata, namespaced=True, name_rule=names.path_segment_name)
        check_pod_disruption_budget(c, obj)
    elif isinstance(obj, Workload):
        check_meta(c, obj.metadata, namespaced=True, name_rule=names.dns1123_subdomain)
        check_pod_spec(c, obj.spec.template.spec, ("spec", "template", "spec"))
    return c.diagnostics


def check_pod_spec(c: Checker, spec: PodSpec, path: Path) -> None:
    """The DRA parts of a pod: its claims and the containers' references to them."""
    cpath = (*path, "resourceClaims")
    for i, claim in enumerate(spec.resource_claims or ()):
        ipath = (*cpath, i)
        c.name(names.dns1123_label(claim.name), (*ipath, "name"), "pod claim name", claim.name)
        sources = [s for s in (claim.resource_claim_name, claim.resource_claim_template_name) if s is not None]
        if not sources:
            c.add("missing_field", "exactly one of resourceClaimName or resourceClaimTemplateName is required", ipath)
        elif len(sources) > 1:
            c.add("mutually_exclusive", "only one of resourceClaimName or resourceClaimTemplateName may be set", ipath)
        for source in sources:
            c.name(names.dns1123_subdomain(source), ipath, "claim name", source)
    c.unique((claim.name for claim in spec.resource_claims or ()), cpath, "pod claim name")
    known = {claim.name for claim in spec.resource_claims or ()}
    for field, containers in (("containers", spec.containers), ("initContainers", spec.init_containers or [])):
        for i, container in enumerate(containers):
            refs = container.resources.claims if container.resources else None
            rpath = (*path, field, i, "resources", "claims")
            for j, ref in enumerate(refs or ()):
                if ref.name not in known:
                    c.add("unknown_reference", f"claim {ref.name!r} is not in spec.resourceClaims", (*rpath, j, "name"))
            c.unique(
                (f"{ref.name}/{ref.request}" if ref.request else ref.name for ref in refs or ()),
                rpath,
                "claim reference",
                code="duplicate_value",
            )
