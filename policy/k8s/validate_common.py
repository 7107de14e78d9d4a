"""Validation of metadata, node selectors and the DRA parts shared by several kinds."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gpupolicy.policy.k8s import limits, names
from gpupolicy.policy.k8s.checker import Checker, Path
from gpupolicy.policy.k8s.common import DeviceSelector, DeviceTaint, DeviceToleration, OpaqueDeviceConfiguration
from gpupolicy.policy.k8s.meta import NodeSelector, NodeSelectorRequirement, ObjectMeta

NameRule = Callable[[str], list[str]]


def check_meta(c: Checker, meta: ObjectMeta, namespaced: bool, name_rule: NameRule, path: Path = ("metadata",)) -> None:
    if meta.name:
        c.name(name_rule(meta.name), (*path, "name"), "name", meta.name)
    elif not meta.generate_name:
        c.add("missing_field", "name or generateName is required", (*path, "name"))
    if meta.generate_name:
        # A prefix: ValidateObjectMeta masks a trailing dash (maskTrailingDash) before the name rule.
        prefix = meta.generate_name
        masked = prefix[:-2] + "a" if len(prefix) > 1 and prefix.endswith("-") else prefix
        c.name(name_rule(masked), (*path, "generateName"), "generateName", prefix)
    _check_owners_finalizers(c, meta, path)
    # On a cluster-scoped kind the API server clears metadata.namespace instead of refusing it.
    if meta.namespace and namespaced:
        c.name(names.dns1123_label(meta.namespace), (*path, "namespace"), "namespace", meta.namespace)
    check_labels_annotations(c, meta, path)


STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")


def _check_owners_finalizers(c: Checker, meta: ObjectMeta, path: Path) -> None:
    """ValidateOwnerReferences and ValidateFinalizers (with the core API's standard finalizer names)."""
    controller = ""
    for i, ref in enumerate(meta.owner_references or ()):
        rpath = (*path, "ownerReferences", i)
        if ref.api_version.count("/") > 1 or (ref.api_version and not ref.api_version.rpartition("/")[2]):
            c.add("invalid_value", "apiVersion must be <group>/<version> or <version>", (*rpath, "apiVersion"))
        for field, value in (("apiVersion", ref.api_version), ("kind", ref.kind), ("name", ref.name), ("uid", ref.uid)):
            c.required(value, (*rpath, field), field)
        if ref.api_version == "v1" and ref.kind == "Event":
            c.add("invalid_value", "an Event cannot be an owner", rpath)
        if ref.controller:
            if controller:
                c.add(
                    "invalid_value",
                    f"only one owner reference can be the controller, not {ref.kind}/{ref.name} too",
                    rpath,
                )
            controller = f"{ref.kind}/{ref.name}"
    finalizers = meta.finalizers or ()
    for i, finalizer in enumerate(finalizers):
        fpath = (*path, "finalizers", i)
        c.name(names.label_key(finalizer), fpath, "finalizer", finalizer)
        if "/" not in finalizer and finalizer not in STANDARD_FINALIZERS:
            c.add("invalid_name", f"finalizer {finalizer!r} is neither a standard finalizer nor fully qualified", fpath)
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        c.add("invalid_value", "finalizers orphan and foregroundDeletion cannot be both set", (*path, "finalizers"))


def check_labels_annotations(c: Checker, meta: ObjectMeta, path: Path) -> None:
    for key, value in (meta.labels or {}).items():
        c.name(names.label_key(key), (*path, "labels", key), "label key", key)
        if names.label_value(value):
            c.name(names.label_value(value), (*path, "labels", key), "label value", value)
    total = 0
    for key, value in (meta.annotations or {}).items():
        c.name(names.label_key(key.lower()), (*path, "annotations", key), "annotation key", key)
        total += len(key) + len(value)
    if total > limits.TOTAL_ANNOTATION_SIZE:
        c.add("too_long", f"annotations may not exceed {limits.TOTAL_ANNOTATION_SIZE} bytes", (*path, "annotations"))


def check_node_selector(c: Checker, selector: NodeSelector, path: Path) -> None:
    terms = selector.node_selector_terms
    if not terms:
        c.add("missing_field", "nodeSelectorTerms must have at least one term", (*path, "nodeSelectorTerms"))
    for i, term in enumerate(terms):
        tpath = (*path, "nodeSelectorTerms", i)
        for j, req in enumerate(term.match_expressions or ()):
            _check_requirement(c, req, (*tpath, "matchExpressions", j), fields=False)
        for j, req in enumerate(term.match_fields or ()):
            _check_requirement(c, req, (*tpath, "matchFields", j), fields=True)


def _check_requirement(c: Checker, req: NodeSelectorRequirement, path: Path, fields: bool) -> None:
    """core validation's ValidateNodeSelectorRequirement / ValidateNodeFieldSelectorRequirement."""
    values = req.values or []
    vpath = (*path, "values")
    if fields:
        if req.operator not in ("In", "NotIn"):
            c.add("invalid_value", f"matchFields operator {req.operator!r} is not In or NotIn", (*path, "operator"))
        elif len(values) != 1:
            c.add("invalid_value", "matchFields needs exactly one value for operator In or NotIn", vpath)
        if req.key != "metadata.name":
            c.add(
                "invalid_value", f'field selector key {req.key!r} is not supported; use "metadata.name"', (*path, "key")
            )
        else:
            for i, value in enumerate(values):
                c.name(names.dns1123_subdomain(value), (*vpath, i), "node name", value)
        return
    if req.operator in ("In", "NotIn") and not values:
        c.add("missing_field", f"values must be non-empty for operator {req.operator}", vpath)
    elif req.operator in ("Exists", "DoesNotExist") and values:
        c.add("invalid_value", f"values must be empty for operator {req.operator}", vpath)
    elif req.operator in ("Gt", "Lt") and len(values) != 1:
        # Only the count: a value that is not an integer is accepted and then matches no node.
        c.add("invalid_value", f"operator {req.operator} needs exactly one value", vpath)
    c.name(names.label_key(req.key), (*path, "key"), "key", req.key)
    for i, value in enumerate(values):
        if names.label_value(value):
            c.name(names.label_value(value), (*vpath, i), "label value", value)


def check_selectors(c: Checker, selectors: Sequence[DeviceSelector] | None, path: Path) -> None:
    if c.too_many(selectors, limits.DEVICE_SELECTORS_MAX, path, "selectors"):
        return
    for i, selector in enumerate(selectors or ()):
        spath = (*path, i)
        if selector.cel is None:
            c.add("missing_field", "cel is required", (*spath, "cel"))
            continue
        epath = (*spath, "cel", "expression")
        expression = selector.cel.expression
        if not expression.strip():
            c.add("missing_field", "expression is required", epath)
        else:
            c.too_long(expression, limits.CEL_EXPRESSION_MAX_LENGTH, epath, "CEL expression")


def check_opaque(c: Checker, opaque: OpaqueDeviceConfiguration | None, path: Path) -> None:
    if opaque is None:
        c.add("missing_field", "opaque is required", (*path, "opaque"))
        return
    opath = (*path, "opaque")
    c.name(names.driver_name(opaque.driver), (*opath, "driver"), "driver", opaque.driver)
    c.json_object(opaque.parameters, limits.OPAQUE_PARAMETERS_MAX_LENGTH, (*opath, "parameters"), "parameters")


def check_toleration(c: Checker, tol: DeviceToleration, path: Path) -> None:
    if tol.key:
        c.name(names.label_key(tol.key), (*path, "key"), "toleration key", tol.key)
    if tol.effective_operator == "Exists":
        if tol.value:
            c.add("invalid_value", "value must be empty for operator `Exists`", (*path, "value"))
    elif tol.value:
        c.name(names.label_value(tol.value), (*path, "value"), "toleration value", tol.value)


def check_taint(c: Checker, taint: DeviceTaint, path: Path) -> None:
    c.name(names.label_key(taint.key), (*path, "key"), "taint key", taint.key)
    if taint.value:
        c.name(names.label_value(taint.value), (*path, "value"), "taint value", taint.value)


def check_binding(c: Checker, conditions: Sequence[str] | None, failures: Sequence[str] | None, path: Path) -> None:
    """validateDeviceBindingParameters: a list over its limit skips only its own name checks; duplicates, overlap
    and the two lists' dependency are checked in any case."""
    conds, fails = list(conditions or ()), list(failures or ())
    for field, values, limit in (
        ("bindingConditions", conds, limits.BINDING_CONDITIONS_MAX),
        ("bindingFailureConditions", fails, limits.BINDING_FAILURE_CONDITIONS_MAX),
    ):
        if not c.too_many(values, limit, (*path, field), field):
            for i, value in enumerate(values):
                c.name(names.label_key(value), (*path, field, i), "condition", value)
        c.unique(values, (*path, field), "condition", code="duplicate_value")
    for i, value in enumerate(fails):
        if value in conds:
            c.add(
                "invalid_value",
                "bindingFailureConditions must not overlap with bindingConditions",
                (*path, "bindingFailureConditions", i),
            )
    if fails and not conds:
        c.add(
            "missing_field",
            "bindingConditions are required to use bindingFailureConditions",
            (*path, "bindingConditions"),
        )
    if conds and not fails:
        c.add(
            "missing_field",
            "bindingFailureConditions are required to use bindingConditions",
            (*path, "bindingFailureConditions"),
        )


def check_qualified_key(c: Checker, key: str, path: Path, what: str) -> None:
    c.name(names.qualified_name(key), path, what, key)


def check_uid(c: Checker, value: str, path: Path, what: str) -> None:
    if not names.is_uuid(value):
        c.add("invalid_value", f"{what} {value!r} must be an RFC 4122 UUID in lower case", path)
