"""Mutations for the validation differential: each breaks one rule the API server checks.

``mutations()`` lists ``(rule, kind, breaker)``; a breaker edits a valid generated object in place (it may use the
generator's ``random.Random`` to vary how it breaks the rule). Rules follow
``k8s.io/kubernetes/pkg/apis/resource/validation`` and the declarative tags of ``k8s.io/api/resource/v1``:
metadata, DeviceClasses and claims here, slices in :mod:`tests.e2e.objslice`, spellings of quantities and names
(valid and not) in :mod:`tests.e2e.objspell`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from tests.e2e.objedit import (
    CLAIMS,
    KINDS_ALL,
    Breaker,
    at,
    claim_of,
    do,
    exact,
    fields,
    first_available,
    many,
    meta,
    selector_expr,
    set_meta,
    spec,
)
from tests.e2e.objgen import DOMAIN, Obj
from tests.e2e.objslice import slice_rules
from tests.e2e.objspell import name_rules, quantity_rules

LONG_JSON = {"blob": "x" * (10 * 1024)}
BAD_NAMES = ("Bad_Name", "-lead", "trail-", "a..b", "UPPER", "sp ace", "x" * 254, "newline\n")
BAD_LABELS = ("Bad_Label!", "-x", "a" * 64)


def _meta_rules() -> Iterator[tuple[str, str, Breaker]]:
    for kind in KINDS_ALL:
        yield "meta_name_format", kind, at(meta, "name", *BAD_NAMES)
        yield "meta_name_missing", kind, set_meta("name", None)
        yield "meta_label_key", kind, set_meta("labels", {"bad key/x": "v"})
        yield "meta_label_value", kind, set_meta("labels", {"app": "-bad-"})
        yield "meta_annotation_key", kind, set_meta("annotations", {"bad key": "v"})
    yield "meta_name_too_long", "claim", set_meta("name", "a" * 254)
    yield "meta_generate_name_format", "claim", do(lambda o: o["metadata"].update(name=None, generateName="Bad_"))
    yield "meta_finalizers", "slice", at(meta, "finalizers", ["bad finalizer!"], ["a/b/c"], ["kubernetes"], ["x", "x"])
    owner = {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "8a2c4b70-8d54-4c45-a52c-b6e2c1a5b0e1"}
    yield (
        "meta_owner_reference",
        "slice",
        at(
            meta,
            "ownerReferences",
            [{**owner, "uid": ""}],
            [{**owner, "name": ""}],
            [{**owner, "apiVersion": ""}],
            [{**owner, "kind": ""}],
            [owner, {**owner, "controller": True}, {**owner, "uid": "x", "controller": True}],
        ),
    )
    yield "meta_label_value_too_long", "claim", set_meta("labels", {"a": "v" * 64})
    yield "meta_annotation_key_too_long", "template", set_meta("annotations", {"example.com/" + "k" * 64: "v"})
    yield "meta_server_fields", "class", set_meta("uid", "not-a-uid")
    yield "meta_annotations_too_big", "class", set_meta("annotations", {"example.com/big": "x" * (256 * 1024)})
    yield "meta_namespace_on_cluster_kind", "class", set_meta("namespace", "default")
    yield "meta_generate_name", "slice", do(lambda o: o["metadata"].update({"generateName": "s-"}) or None)


def _class_rules() -> Iterator[tuple[str, str, Breaker]]:
    cls = spec
    yield "class_selector_cel_missing", "class", at(cls, "selectors", [{}], [{"cel": None}])
    yield "class_selector_empty", "class", at(cls, "selectors", [{"cel": {"expression": ""}}])
    yield "class_selectors_too_many", "class", at(cls, "selectors", many(33, lambda i: {"cel": {"expression": "true"}}))
    yield "class_config_opaque_missing", "class", at(cls, "config", [{}])
    yield (
        "class_config_too_many",
        "class",
        at(cls, "config", many(33, lambda i: {"opaque": {"driver": "a.b", "parameters": {}}})),
    )
    yield (
        "class_extended_resource_name",
        "class",
        at(cls, "extendedResourceName", "gpu", "kubernetes.io/gpu", "requests.example.com/gpu", "example.com/Bad Name"),
    )
    for kind in ("class", "claim"):
        yield "cel_syntax", kind, do(lambda o: selector_expr(o, "device.driver =="))
        yield "cel_not_bool", kind, do(lambda o: selector_expr(o, '"gpu"'))
        yield "cel_unknown_variable", kind, do(lambda o: selector_expr(o, "gpu.memory > 1"))
        yield "cel_too_long", kind, do(lambda o: selector_expr(o, '"' + "a" * 10300 + '" != ""'))
        opaque_owner = (
            (lambda o: spec(o).setdefault("config", [{}])[0])
            if kind == "class"
            else (lambda o: claim_of(o).setdefault("config", [{}])[0])
        )
        yield from _opaque_rules(kind, opaque_owner)


def _opaque_rules(kind: str, owner: Callable[[Obj], Obj]) -> Iterator[tuple[str, str, Breaker]]:
    def opaque(obj: Obj) -> Obj:
        entry = owner(obj)
        entry.setdefault("opaque", {"driver": "a.b", "parameters": {}})
        result: Obj = entry["opaque"]
        return result

    yield "opaque_driver", kind, at(opaque, "driver", "Bad_Driver", "a" * 64 + ".com", "-a.b", "")
    yield "opaque_parameters_missing", kind, at(opaque, "parameters", ..., None)
    yield "opaque_parameters_not_object", kind, at(opaque, "parameters", [1, 2], "text", 5, True)
    yield "opaque_parameters_too_long", kind, at(opaque, "parameters", LONG_JSON, {"b": "x" * (10 * 1024 - 7)})
    yield "opaque_missing", kind, do(lambda o: owner(o).pop("opaque", None) and None)


def _claim_rules() -> Iterator[tuple[str, str, Breaker]]:
    def req(o: Obj) -> Obj:
        r: Obj = claim_of(o)["requests"][0]
        return r

    def sub(o: Obj) -> Obj:
        return first_available(o)[0]

    def tol(o: Obj) -> Obj:
        t: Obj = {"key": "example.com/x", "operator": "Equal", "value": "v", "effect": "NoSchedule"}
        fields(o)["tolerations"] = [t]
        return t

    def constraint(o: Obj) -> Obj:
        c: Obj = {"matchAttribute": f"{DOMAIN}/model"}
        claim_of(o)["constraints"] = [c]
        return c

    def cap(o: Obj) -> Obj:
        c: Obj = {}
        fields(o)["capacity"] = {"requests": c}
        return c

    def dup_request(o: Obj) -> None:
        claim = claim_of(o)
        claim["requests"].append(dict(claim["requests"][0]))

    def dup_sub(o: Obj) -> None:
        subs = first_available(o)
        subs.append(dict(subs[0]))

    for kind in CLAIMS:
        yield "request_name", kind, at(req, "name", "Req_1", "a" * 64, "", "-x")
        yield "request_duplicate", kind, do(dup_request)
        yield "request_none", kind, do(lambda o: claim_of(o).update(requests=[{"name": "only"}]))
        yield (
            "request_both",
            kind,
            do(lambda o: exact(o).update(firstAvailable=[{"name": "s", "deviceClassName": "c"}])),
        )
        yield (
            "requests_too_many",
            kind,
            do(
                lambda o: claim_of(o).update(
                    requests=many(33, lambda k: {"name": f"r{k}", "exactly": {"deviceClassName": "c"}}),
                    constraints=[],
                    config=[],
                )
            ),
        )
        yield "device_class_name", kind, at(fields, "deviceClassName", "", ..., "Bad Class", "a" * 254)
        yield "allocation_mode", kind, at(fields, "allocationMode", "Some", "all", "")
        yield "count_not_positive", kind, do(lambda o: fields(o).update(allocationMode="ExactCount", count=0))
        yield "count_negative", kind, do(lambda o: fields(o).update(count=-2))
        yield "count_with_all", kind, do(lambda o: fields(o).update(allocationMode="All", count=2))
        yield "count_over_claim_limit", kind, do(lambda o: fields(o).update(allocationMode="ExactCount", count=33))
        yield "count_not_int", kind, at(fields, "count", "2", 1.5)
        yield "selectors_too_many", kind, at(fields, "selectors", many(33, lambda i: {"cel": {"expression": "true"}}))
        yield "selector_cel_missing", kind, at(fields, "selectors", [{}])
        yield "admin_access_not_bool", kind, do(lambda o: exact(o)["exactly"].update(adminAccess="yes"))
        yield (
            "first_available_too_many",
            kind,
            do(lambda o: first_available(o).extend(many(8, lambda k: {"name": f"more{k}", "deviceClassName": "c"}))),
        )
        yield "subrequest_name", kind, at(sub, "name", "Sub_1", "a" * 64, "")
        yield "subrequest_duplicate", kind, do(dup_sub)
        yield "subrequest_admin_access", kind, at(sub, "adminAccess", True)
        yield "subrequest_class_missing", kind, at(sub, "deviceClassName", ..., "")
        yield "tolerations_too_many", kind, at(fields, "tolerations", many(17, lambda i: {"operator": "Exists"}))
        yield "toleration_key", kind, at(tol, "key", "bad key", "a/b/c", "-x")
        yield "toleration_exists_value", kind, do(lambda o: tol(o).update(operator="Exists"))
        yield "toleration_operator", kind, at(tol, "operator", "Gt", "exists", "")
        yield "toleration_effect", kind, at(tol, "effect", "Sometimes", "noSchedule")
        yield "toleration_value", kind, at(tol, "value", "bad value!", "a" * 64)
        yield "toleration_seconds_effect", kind, do(lambda o: tol(o).update(tolerationSeconds=10))
        yield "toleration_seconds_negative", kind, do(lambda o: tol(o).update(effect="NoExecute", tolerationSeconds=-5))
        yield "toleration_no_key_equal", kind, do(lambda o: tol(o).pop("key"))
        yield "capacity_key", kind, at(cap, "Bad Key", "1Gi")
        yield "capacity_key_domain", kind, at(cap, "bad_domain/memory", "1Gi")
        yield "capacity_negative", kind, at(cap, "memory", "-1", "-1Gi")
        yield "capacity_not_quantity", kind, at(cap, "memory", "lots", "1.5.5", "")
        yield "capacity_zero", kind, at(cap, "memory", "0")
        yield "constraint_both", kind, do(lambda o: constraint(o).update(distinctAttribute=f"{DOMAIN}/x"))
        yield "constraint_none", kind, do(lambda o: constraint(o).pop("matchAttribute"))
        yield (
            "constraint_attribute",
            kind,
            at(constraint, "matchAttribute", "model", "Bad_Domain/model", f"{DOMAIN}/" + "a" * 33, f"{DOMAIN}/"),
        )
        yield (
            "constraint_distinct_attribute",
            kind,
            do(lambda o: constraint(o).update(matchAttribute=None, distinctAttribute="model")),
        )
        yield "constraint_unknown_request", kind, at(constraint, "requests", ["nope"], ["req-0/nope"], ["a/b/c"])
        yield "constraint_duplicate_request", kind, at(constraint, "requests", ["req-0", "req-0"])
        yield (
            "constraints_too_many",
            kind,
            do(lambda o: claim_of(o).update(constraints=many(33, lambda i: {"matchAttribute": f"{DOMAIN}/m"}))),
        )
        yield (
            "config_unknown_request",
            kind,
            do(
                lambda o: claim_of(o).update(
                    config=[{"requests": ["nope"], "opaque": {"driver": "a.b", "parameters": {}}}]
                )
            ),
        )
        yield (
            "config_too_many",
            kind,
            do(
                lambda o: claim_of(o).update(config=many(33, lambda i: {"opaque": {"driver": "a.b", "parameters": {}}}))
            ),
        )
        yield "unknown_field", kind, at(fields, "colour", "red")
        yield (
            "constraint_subrequest_of_exact",
            kind,
            do(
                lambda o: (
                    (exact(o), constraint(o).update(requests=[f"{claim_of(o)['requests'][0]['name']}/x"]))[0] and None
                )
            ),
        )
        yield (
            "config_duplicate_request",
            kind,
            do(
                lambda o: claim_of(o).update(
                    config=[{"requests": ["req-0", "req-0"], "opaque": {"driver": "a.b", "parameters": {}}}]
                )
            ),
        )
        yield "constraint_requests_too_many", kind, at(constraint, "requests", [f"req-{i}" for i in range(33)])
    yield "template_metadata_name", "template", do(lambda o: spec(o).update(metadata={"name": "x"}))
    yield "template_metadata_labels", "template", do(lambda o: spec(o).update(metadata={"labels": {"-x": "y"}}))


def mutations() -> Iterator[tuple[str, str, Breaker]]:
    """Every rule with the kind whose valid objects it breaks."""
    yield from _meta_rules()
    yield from _class_rules()
    yield from _claim_rules()
    yield from slice_rules()
    yield from quantity_rules()
    yield from name_rules()
