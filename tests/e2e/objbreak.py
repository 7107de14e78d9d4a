"""Mutations for the validation differential: each breaks one rule the API server checks.

``mutations()`` lists ``(rule, kind, breaker)``; a breaker edits a valid generated object in place (it may use the
generator's ``random.Random`` to vary how it breaks the rule). Rules follow
``k8s.io/kubernetes/pkg/apis/resource/validation`` and the declarative tags of ``k8s.io/api/resource/v1``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from tests.e2e.objgen import DOMAIN, Obj

Breaker = Callable[[Obj, random.Random], None]
KINDS_ALL = ("class", "claim", "template", "slice")
CLAIMS = ("claim", "template")


# -- where to break -------------------------------------------------------------------------------------------------


def claim_of(obj: Obj) -> Obj:
    spec = obj["spec"]
    devices: Obj = spec["spec"]["devices"] if obj["kind"] == "ResourceClaimTemplate" else spec["devices"]
    return devices


def fields(obj: Obj) -> Obj:
    """The first request's fields (its ``exactly``, or its first subrequest)."""
    req = claim_of(obj)["requests"][0]
    return req["exactly"] if "exactly" in req else req["firstAvailable"][0]


def exact(obj: Obj) -> Obj:
    """The first request, turned into an exact request if it was not one (references to it stay valid)."""
    claim = claim_of(obj)
    req = claim["requests"][0]
    if "exactly" not in req:
        req["exactly"] = {k: v for k, v in req.pop("firstAvailable")[0].items() if k != "name"}
        sub = f"{req['name']}/"
        for group in ("constraints", "config"):
            for entry in claim.get(group, []):
                entry["requests"] = [r for r in entry.get("requests", []) if not r.startswith(sub)] or None
                if entry["requests"] is None:
                    del entry["requests"]
    return req


def first_available(obj: Obj) -> list[Obj]:
    req = claim_of(obj)["requests"][0]
    if "firstAvailable" not in req:
        req["firstAvailable"] = [{"name": "alt", **req.pop("exactly")}]
        req["firstAvailable"][0].pop("adminAccess", None)
    subs: list[Obj] = req["firstAvailable"]
    return subs


def meta(obj: Obj) -> Obj:
    m: Obj = obj["metadata"]
    return m


def spec(obj: Obj) -> Obj:
    s: Obj = obj["spec"]
    return s


def device(obj: Obj) -> Obj:
    s = spec(obj)
    if "devices" not in s:
        s.pop("sharedCounters", None)
        s["devices"] = [{"name": "gpu-0"}]
        if s.get("perDeviceNodeSelection"):
            s["devices"][0]["allNodes"] = True
    d: Obj = s["devices"][0]
    return d


def multi_device(obj: Obj) -> Obj:
    """The first device, allowing multiple allocations, with a capacity ``memory`` of 80Gi."""
    d = device(obj)
    d["allowMultipleAllocations"] = True
    d.setdefault("capacity", {})["memory"] = {"value": "80Gi"}
    return d


def policy(obj: Obj, policy: Obj) -> None:
    multi_device(obj)["capacity"]["memory"]["requestPolicy"] = policy


def counter_sets(obj: Obj) -> list[Obj]:
    s = spec(obj)
    s.pop("devices", None)
    if not s.get("sharedCounters"):
        s["sharedCounters"] = [{"name": "set-0", "counters": {"memory": {"value": "1Gi"}}}]
    sets: list[Obj] = s["sharedCounters"]
    return sets


def consumption(obj: Obj) -> list[Obj]:
    d = device(obj)
    if not d.get("consumesCounters"):
        d["consumesCounters"] = [{"counterSet": "set-0", "counters": {"memory": {"value": "1Gi"}}}]
    cons: list[Obj] = d["consumesCounters"]
    return cons


def node_selection(obj: Obj, **fields: Any) -> None:
    s = spec(obj)
    for key in ("nodeName", "nodeSelector", "allNodes", "perDeviceNodeSelection"):
        s.pop(key, None)
    for d in s.get("devices", []):
        for key in ("nodeName", "nodeSelector", "allNodes"):
            d.pop(key, None)
    s.update(fields)


def on_device(fields: Obj, per_device: bool = True) -> Breaker:
    """Node selection per device: the slice in that mode (or, with ``per_device`` False, on one node) and
    ``fields`` on its first device."""

    def breaker(obj: Obj, r: random.Random) -> None:
        if per_device:
            node_selection(obj, perDeviceNodeSelection=True)
        else:
            node_selection(obj, nodeName="n")
        device(obj).update(fields)

    return breaker


def claim_lists(obj: Obj, empty: list[Obj] | None) -> None:
    fields(obj).update(selectors=empty, tolerations=empty)
    claim_of(obj).update(constraints=empty, config=empty)


def on_all_nodes(obj: Obj) -> Obj:
    """The slice's spec, its devices for all nodes (no per-device node selection)."""
    node_selection(obj, allNodes=True)
    return spec(obj)


def selector_expr(obj: Obj, expression: str) -> None:
    if obj["kind"] == "DeviceClass":
        spec(obj)["selectors"] = [{"cel": {"expression": expression}}]
    else:
        fields(obj)["selectors"] = [{"cel": {"expression": expression}}]


def set_meta(key: str, value: Any) -> Breaker:
    def breaker(obj: Obj, r: random.Random) -> None:
        if value is None:
            obj["metadata"].pop(key, None)
        else:
            obj["metadata"][key] = value

    return breaker


def at(path: Callable[[Obj], Obj], key: str, *values: Any) -> Breaker:
    """Set ``key`` of the dict ``path`` finds to one of ``values`` in turn (``...`` deletes it)."""

    calls = [0]

    def breaker(obj: Obj, r: random.Random) -> None:
        target = path(obj)
        value = values[calls[0] % len(values)]  # each variant the next value, so every value is tried
        calls[0] += 1
        if value is ...:
            target.pop(key, None)
        else:
            target[key] = value

    breaker.variants = len(values)  # type: ignore[attr-defined]  # generate() tries each value at least once
    return breaker


def do(fn: Callable[[Obj], None]) -> Breaker:
    return lambda obj, r: fn(obj)


def many(n: int, make: Callable[[int], Any]) -> list[Any]:
    return [make(i) for i in range(n)]


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


def _slice_rules() -> Iterator[tuple[str, str, Breaker]]:
    pool = lambda o: spec(o)["pool"]  # noqa: E731

    yield "slice_driver", "slice", at(spec, "driver", "Bad_Driver", "", "a" * 60 + ".com", "nodots")
    yield "slice_pool_name", "slice", at(pool, "name", "", "Pool_A", "a//b", "a" * 254, "/a")
    yield "slice_pool_count", "slice", at(pool, "resourceSliceCount", 0, -1, ...)
    yield "slice_pool_generation", "slice", at(pool, "generation", -1)
    yield "slice_node_none", "slice", do(lambda o: node_selection(o))
    yield "slice_node_two", "slice", do(lambda o: node_selection(o, nodeName="node-a", allNodes=True))
    yield "slice_node_name_empty", "slice", do(lambda o: node_selection(o, nodeName=""))
    yield "slice_node_name_format", "slice", do(lambda o: node_selection(o, nodeName="Node_A"))
    yield "slice_all_nodes_false", "slice", do(lambda o: node_selection(o, nodeName="n", allNodes=False))
    yield (
        "slice_per_device_false",
        "slice",
        do(lambda o: node_selection(o, allNodes=True, perDeviceNodeSelection=False)),
    )
    term = {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}
    yield (
        "slice_selector_two_terms",
        "slice",
        do(lambda o: node_selection(o, nodeSelector={"nodeSelectorTerms": [term, term]})),
    )
    yield "slice_selector_no_terms", "slice", do(lambda o: node_selection(o, nodeSelector={"nodeSelectorTerms": []}))
    for label, expr in (
        ("in_no_values", {"key": "gpu", "operator": "In", "values": []}),
        ("exists_values", {"key": "gpu", "operator": "Exists", "values": ["a"]}),
        ("bad_key", {"key": "bad key", "operator": "Exists"}),
        ("gt_text", {"key": "gpus", "operator": "Gt", "values": ["two"]}),
        ("operator", {"key": "gpus", "operator": "Maybe"}),
        ("bad_value", {"key": "gpu", "operator": "In", "values": ["bad value!"]}),
    ):
        yield (
            f"slice_selector_{label}",
            "slice",
            do(lambda o, e=expr: node_selection(o, nodeSelector={"nodeSelectorTerms": [{"matchExpressions": [e]}]})),
        )
    yield (
        "slice_selector_match_fields",
        "slice",
        do(
            lambda o: node_selection(
                o,
                nodeSelector={
                    "nodeSelectorTerms": [{"matchFields": [{"key": "spec.x", "operator": "In", "values": ["a"]}]}]
                },
            )
        ),
    )
    yield (
        "slice_counters_and_devices",
        "slice",
        do(
            lambda o: spec(o).update(
                devices=[{"name": "d"}], sharedCounters=[{"name": "s", "counters": {"c": {"value": "1"}}}]
            )
        ),
    )
    yield (
        "slice_devices_too_many",
        "slice",
        do(lambda o: spec(o).update(devices=many(129, lambda i: {"name": f"d{i}"}))),
    )
    yield (
        "slice_devices_too_many_taints",
        "slice",
        do(
            lambda o: spec(o).update(
                devices=many(65, lambda i: {"name": f"d{i}", "taints": [{"key": "k", "effect": "NoSchedule"}]})
            )
        ),
    )
    yield "device_name", "slice", at(device, "name", "GPU-0", "a" * 64, "", "gpu_0", "gpu-0\n")
    yield "device_duplicate", "slice", do(lambda o: spec(o).update(devices=[device(o), dict(device(o))]))
    yield "device_attributes_too_many", "slice", at(device, "attributes", {f"a{i}": {"int": i} for i in range(33)})
    yield (
        "device_attributes_and_capacity_too_many",
        "slice",
        do(
            lambda o: device(o).update(
                attributes={f"a{i}": {"int": i} for i in range(20)},
                capacity={f"c{i}": {"value": "1"} for i in range(13)},
            )
        ),
    )
    for label, name in (
        ("format", "Bad Name"),
        ("domain", "bad_domain/x"),
        ("id_too_long", "a" * 33),
        ("domain_too_long", "a" * 60 + ".example.com/x"),
        ("empty_id", f"{DOMAIN}/"),
        ("empty_domain", "/x"),
        ("id_leading_digit", "9lives"),
    ):
        yield f"attribute_name_{label}", "slice", do(lambda o, n=name: device(o).update(attributes={n: {"int": 1}}))
        yield f"capacity_name_{label}", "slice", do(lambda o, n=name: device(o).update(capacity={n: {"value": "1"}}))
    yield "attribute_no_value", "slice", at(device, "attributes", {"a": {}})
    yield "attribute_two_values", "slice", at(device, "attributes", {"a": {"int": 1, "string": "x"}})
    yield "attribute_string_too_long", "slice", at(device, "attributes", {"a": {"string": "x" * 65}})
    yield (
        "attribute_version",
        "slice",
        at(device, "attributes", {"a": {"version": "1.0"}}, {"a": {"version": "v1.0.0"}}, {"a": {"version": "01.0.0"}}),
    )
    yield "attribute_version_too_long", "slice", at(device, "attributes", {"a": {"version": "1.0.0-" + "a" * 60}})
    yield "attribute_version_empty", "slice", at(device, "attributes", {"a": {"version": ""}})
    yield (
        "slice_devices_too_many_counters",
        "slice",
        do(
            lambda o: spec(o).update(
                devices=many(
                    65,
                    lambda i: {
                        "name": f"d{i}",
                        "consumesCounters": [{"counterSet": "s", "counters": {"c": {"value": "1"}}}],
                    },
                )
            )
        ),
    )
    yield "attribute_wrong_type", "slice", at(device, "attributes", {"a": {"int": "1"}}, {"a": {"bool": "yes"}})
    yield "capacity_value_missing", "slice", at(device, "capacity", {"memory": {}})
    yield "capacity_value_bad", "slice", at(device, "capacity", {"memory": {"value": "lots"}})
    yield (
        "request_policy_single",
        "slice",
        do(
            lambda o: device(o).update(
                allowMultipleAllocations=False, capacity={"m": {"value": "1", "requestPolicy": {}}}
            )
        ),
    )
    for label, pol in (
        ("both", {"default": "1Gi", "validValues": ["1Gi"], "validRange": {"min": "1Gi"}}),
        ("values_no_default", {"validValues": ["1Gi"]}),
        ("range_no_default", {"validRange": {"min": "1Gi"}}),
        ("values_unsorted", {"default": "2Gi", "validValues": ["2Gi", "1Gi"]}),
        ("values_duplicate", {"default": "1Gi", "validValues": ["1Gi", "1Gi"]}),
        ("values_over_capacity", {"default": "1Gi", "validValues": ["1Gi", "100Gi"]}),
        ("default_not_valid", {"default": "3Gi", "validValues": ["1Gi", "2Gi"]}),
        ("values_too_many", {"default": "1Gi", "validValues": [f"{i}Gi" for i in range(1, 12)]}),
        ("range_no_min", {"default": "1Gi", "validRange": {"max": "2Gi"}}),
        ("range_min_over_capacity", {"default": "90Gi", "validRange": {"min": "90Gi"}}),
        ("range_default_below_min", {"default": "1Gi", "validRange": {"min": "2Gi"}}),
        ("range_max_below_min", {"default": "2Gi", "validRange": {"min": "2Gi", "max": "1Gi"}}),
        ("range_max_over_capacity", {"default": "2Gi", "validRange": {"min": "2Gi", "max": "100Gi"}}),
        ("range_default_over_max", {"default": "3Gi", "validRange": {"min": "1Gi", "max": "2Gi"}}),
        ("range_step_zero", {"default": "1Gi", "validRange": {"min": "1Gi", "step": "0"}}),
        ("range_step_big", {"default": "1Gi", "validRange": {"min": "1Gi", "step": "80Gi"}}),
        ("range_not_multiple", {"default": "1500Mi", "validRange": {"min": "1Gi", "step": "1Gi"}}),
        ("default_over_capacity", {"default": "100Gi"}),
        ("default_negative", {"default": "-1"}),
        ("range_fraction", {"default": "500m", "validRange": {"min": "500m", "step": "250m"}}),
        ("range_step_rounded", {"default": "750m", "validRange": {"min": "500m", "step": "500m"}}),
        ("range_step_rounded_off", {"default": "3", "validRange": {"min": "0", "step": "1500m"}}),
        ("range_negative_min", {"default": "0", "validRange": {"min": "-1", "step": "1"}}),
        ("range_negative_no_step", {"default": "0", "validRange": {"min": "-1"}}),
        ("values_same_integer", {"default": "2", "validValues": ["1500m", "2"]}),
    ):
        yield f"request_policy_{label}", "slice", do(lambda o, p=pol: policy(o, dict(p)))
    taint: Callable[[Obj], Obj] = lambda o: device(o).setdefault("taints", [{"key": "k", "effect": "NoSchedule"}])[0]  # noqa: E731
    yield "taint_key", "slice", at(taint, "key", "bad key", "", "-k")
    yield "taint_value", "slice", at(taint, "value", "bad value!", "a" * 64)
    yield "taint_effect", "slice", at(taint, "effect", "Maybe", "", ...)
    yield "taints_too_many", "slice", at(device, "taints", many(17, lambda i: {"key": f"k{i}", "effect": "NoSchedule"}))
    cons0: Callable[[Obj], Obj] = lambda o: consumption(o)[0]  # noqa: E731
    yield "consumption_set_missing", "slice", at(cons0, "counterSet", ..., "")
    yield "consumption_set_name", "slice", at(cons0, "counterSet", "Set_0", "a" * 64)
    yield "consumption_counters_empty", "slice", at(cons0, "counters", {}, ...)
    yield "consumption_counter_name", "slice", at(cons0, "counters", {"Mem": {"value": "1"}}, {"a.b": {"value": "1"}})
    yield "consumption_counters_too_many", "slice", at(cons0, "counters", {f"c{i}": {"value": "1"} for i in range(33)})
    yield (
        "consumptions_too_many",
        "slice",
        at(device, "consumesCounters", many(3, lambda i: {"counterSet": f"s{i}", "counters": {"c": {"value": "1"}}})),
    )
    yield (
        "consumption_duplicate",
        "slice",
        at(device, "consumesCounters", many(2, lambda i: {"counterSet": "s", "counters": {"c": {"value": "1"}}})),
    )
    set0: Callable[[Obj], Obj] = lambda o: counter_sets(o)[0]  # noqa: E731
    yield "counter_set_name", "slice", at(set0, "name", "", ..., "Set_0", "a" * 64)
    yield "counter_set_counters", "slice", at(set0, "counters", {}, ..., {"Bad": {"value": "1"}})
    yield "counter_set_too_many_counters", "slice", at(set0, "counters", {f"c{i}": {"value": "1"} for i in range(33)})
    yield "counter_set_duplicate", "slice", do(lambda o: counter_sets(o).append(dict(counter_sets(o)[0])))
    yield (
        "counter_sets_too_many",
        "slice",
        do(
            lambda o: (
                spec(o).update(
                    sharedCounters=many(9, lambda i: {"name": f"s{i}", "counters": {"c": {"value": "1"}}}), devices=None
                )
                or spec(o).pop("devices")
            )
        ),
    )
    yield "counter_value_bad", "slice", at(set0, "counters", {"c": {"value": "x"}}, {"c": {}})
    yield "device_node_without_per_device", "slice", on_device({"nodeName": "n"}, per_device=False)
    yield "device_node_none", "slice", on_device({})
    yield "device_node_two", "slice", on_device({"nodeName": "n", "allNodes": True})
    yield "device_node_name_empty", "slice", on_device({"nodeName": ""})
    yield "device_all_nodes_false", "slice", on_device({"allNodes": False, "nodeName": "n"})
    yield "device_node_name_format", "slice", on_device({"nodeName": "Bad_Node"})
    for label, conds, fails in (
        ("too_many", [f"c{i}" for i in range(5)], ["f"]),
        ("failures_too_many", ["c"], [f"f{i}" for i in range(5)]),
        ("duplicate", ["c", "c"], ["f"]),
        ("overlap", ["c"], ["c"]),
        ("only_failures", None, ["f"]),
        ("only_conditions", ["c"], None),
        ("name", ["bad name!"], ["f"]),
    ):
        yield (
            f"binding_{label}",
            "slice",
            do(lambda o, c=conds, f=fails: device(o).update(bindingConditions=c, bindingFailureConditions=f)),
        )
    yield (
        "binds_to_node_alone",
        "slice",
        do(lambda o: device(o).update(bindsToNode=True, bindingConditions=None, bindingFailureConditions=None)),
    )


# Quantity spellings, valid and not, for resource.ParseQuantity against gpupolicy's parser.
QUANTITIES = (
    " 1",
    "1 ",
    "\xa02\u3000",
    "\t2\n",
    "\x1c1",
    "1e3",
    "1E3",
    "1e-3",
    "0x10",
    "1Ki",
    "1.5Gi",
    "+1",
    "-0",
    ".5",
    "5.",
    "1m",
    "1u",
    "1n",
    "8Ei",
    "9Ei",
    "1k",
    "1K",
    "1KiB",
    "",
    "1e",
    "1_000",
    "١",
    "0.000000001",
    "0.0000000001",
    "1P",
    "1Pi",
    "2E",
    "1.2345678901234567890",
    "9223372036854775807",
    "9223372036854775808",
    "1.5e3Mi",
    "0.5Ki",
    "-1m",
    "1mi",
    "1" + "0" * 30,
)
# resource.ParseQuantity accepts these (no digits is zero; any exponent fits its inf.Dec); gpupolicy's parser
# (policy/quantity.py, shared with CEL's quantity()) refuses them: a known disagreement, listed in the test.
QUANTITIES_UNFIXED = ("e3", ".", "-", "+", "1e1000", "1e999999999")


def _quantity_rules() -> Iterator[tuple[str, str, Breaker]]:
    def capacity(o: Obj) -> Obj:
        entry: Obj = {}
        device(o).setdefault("capacity", {})["qty"] = entry
        return entry

    def counter(o: Obj) -> Obj:
        entry: Obj = {}
        counter_sets(o)[0]["counters"] = {"qty": entry}
        return entry

    def request(o: Obj) -> Obj:
        amounts: Obj = {}
        fields(o)["capacity"] = {"requests": amounts}
        return amounts

    yield "quantity_capacity", "slice", at(capacity, "value", *QUANTITIES)
    yield "quantity_counter", "slice", at(counter, "value", *QUANTITIES)
    yield "quantity_request", "claim", at(request, "qty", *QUANTITIES)
    yield "quantity_unfixed", "slice", at(capacity, "value", *QUANTITIES_UNFIXED)


ATTRIBUTE_NAMES = (
    "Gpu.Example.com/x",
    "a.b/X_1",
    "_x",
    "x-y",
    "gpu.example.com/_x",
    "a.b/9x",
    "a.b/x.y",
    "a-.b/x",
    "a/b",
    "a.b./x",
    "xn--bcher-kva.example/x",
    "a" * 32,
    "A" * 33,
    "a.b/" + "c" * 32,
    "a.b/c/d",
    "a_b/c",
)
DRIVER_NAMES = ("GPU.example.com", "a", "a.b.", "a..b", "1.2.3", "a-b.c", "A.B", "a_b.c", "-a.b", "a.b-")
POOL_NAMES = ("a/b", "a/", "/", "A/b", "a//b", "node-1/gpu-0", "a.b/c.d/e", "a/-b", "x" * 63 + "/" + "y" * 63)
LABEL_KEYS = ("Example.com/x", "example.com/X", "a/b/c", "x" * 63, "x" * 64, "/x", "example.com/", "a_b", "_a", "a.")
LABEL_VALUES = ("a_b", "_a", "a.", "A-1.b_2", "", "a" * 63)
CONDITION_NAMES = ("Ready", "example.com/Ready", "example.com/", "a b", "a/b/c", "x" * 63, "x" * 64)


DNS_LABELS = ("a", "a-b", "1a", "a" * 63, "a" * 64, "-a", "a-", "A", "a.b", "xn--a", "a_b", "0", "a--b")
SUBDOMAINS = ("a.b", "a..b", ".a", "a.", "1", "a" * 64 + ".b", "A.b", "a-.b", "a.-b", ("a" * 63 + ".") * 3 + "a" * 61)
VERSIONS = (
    "1.0.0-alpha",
    "1.0.0+build",
    "1.0.0-01",
    "1.0.0-a..b",
    "v1.0.0",
    "1.0",
    "1.0.0-",
    "1.0.0+",
    "01.0.0",
    "1.0.0-alpha.1+build.1.2",
    "1.0.0-0A",
    " 1.0.0",
    "1.0.0-x-y",
    "1.0.0+001",
)


def each(make: Callable[[Obj, Any], None], *values: Any) -> Breaker:
    """Like :func:`at`, for edits that are not one key: ``make(obj, value)`` with each of ``values`` in turn."""
    calls = [0]

    def breaker(obj: Obj, r: random.Random) -> None:
        make(obj, values[calls[0] % len(values)])
        calls[0] += 1

    breaker.variants = len(values)  # type: ignore[attr-defined]
    return breaker


def _opaque_of_class(obj: Obj) -> Obj:
    entry: Obj = spec(obj).setdefault("config", [{}])[0]
    opaque: Obj = entry.setdefault("opaque", {"parameters": {}})
    return opaque


def _name_rules() -> Iterator[tuple[str, str, Breaker]]:
    """Name spellings around each format's edges, valid and not."""
    names = ATTRIBUTE_NAMES
    yield "name_attribute", "slice", each(lambda o, n: device(o).update(attributes={n: {"int": 1}}), *names)
    yield "name_capacity", "slice", each(lambda o, n: device(o).update(capacity={n: {"value": "1"}}), *names)
    yield (
        "name_match_attribute",
        "claim",
        each(lambda o, n: claim_of(o).update(constraints=[{"matchAttribute": n}]), *names),
    )
    yield "name_driver", "slice", at(spec, "driver", *DRIVER_NAMES)
    yield "name_opaque_driver", "class", at(_opaque_of_class, "driver", *DRIVER_NAMES)
    yield "name_pool", "slice", at(lambda o: spec(o)["pool"], "name", *POOL_NAMES)
    yield "name_label_key", "claim", each(lambda o, k: meta(o).update(labels={k: "v"}), *LABEL_KEYS)
    yield (
        "name_taint_key",
        "slice",
        each(lambda o, k: device(o).update(taints=[{"key": k, "effect": "NoSchedule"}]), *LABEL_KEYS),
    )
    yield (
        "name_toleration_key",
        "claim",
        each(lambda o, k: fields(o).update(tolerations=[{"key": k, "operator": "Exists"}]), *LABEL_KEYS),
    )
    yield "name_label_value", "template", each(lambda o, v: meta(o).update(labels={"k": v}), *LABEL_VALUES)
    yield (
        "name_taint_value",
        "slice",
        each(lambda o, v: device(o).update(taints=[{"key": "k", "value": v, "effect": "NoSchedule"}]), *LABEL_VALUES),
    )
    yield "name_request", "claim", each(lambda o, n: exact(o).update(name=n), *DNS_LABELS)
    yield "name_subrequest", "template", each(lambda o, n: first_available(o)[0].update(name=n), *DNS_LABELS)
    yield "name_device", "slice", each(lambda o, n: device(o).update(name=n), *DNS_LABELS)
    yield "name_counter_set", "slice", each(lambda o, n: counter_sets(o)[0].update(name=n), *DNS_LABELS)
    yield (
        "name_counter",
        "slice",
        each(lambda o, n: counter_sets(o)[0].update(counters={n: {"value": "1"}}), *DNS_LABELS),
    )
    yield "name_object", "class", each(lambda o, n: meta(o).update(name=n), *SUBDOMAINS)
    yield "name_object_namespaced", "claim", each(lambda o, n: meta(o).update(name=n), *SUBDOMAINS)
    yield "name_device_class", "claim", each(lambda o, n: fields(o).update(deviceClassName=n), *SUBDOMAINS)
    yield "name_node", "slice", each(lambda o, n: node_selection(o, nodeName=n), *SUBDOMAINS)
    yield "version_attribute", "slice", each(lambda o, v: device(o).update(attributes={"v": {"version": v}}), *VERSIONS)
    # The API server checks versions with a regular expression only; gpupolicy parses them (policy/semver.py,
    # shared with CEL) and refuses numbers beyond uint64, which Kubernetes' CEL would fail on at evaluation.
    yield (
        "version_unfixed",
        "slice",
        each(
            lambda o, v: device(o).update(attributes={"v": {"version": v}}),
            "99999999999999999999.0.0",
            "1.18446744073709551616.0",
        ),
    )
    yield (
        "name_binding_condition",
        "slice",
        each(lambda o, c: device(o).update(bindingConditions=[c], bindingFailureConditions=["f"]), *CONDITION_NAMES),
    )


def mutations() -> Iterator[tuple[str, str, Breaker]]:
    """Every rule with the kind whose valid objects it breaks."""
    yield from _meta_rules()
    yield from _class_rules()
    yield from _claim_rules()
    yield from _slice_rules()
    yield from _quantity_rules()
    yield from _name_rules()


def gated_off_fields() -> Iterator[tuple[str, str, str, Breaker]]:
    """``(gate, field, kind, adder)``: fields of features whose gate is off in the test bed (1.37 defaults). The
    API server drops such a field silently; gpupolicy, which does not implement them, refuses it as unknown."""
    derived = [{"name": f"{DOMAIN}/slot", "expression": "device.attributes['gpu.example.com'].index"}]
    yield (
        "DRADerivedAttributes",
        "derivedAttributes",
        "claim",
        do(lambda o: exact(o)["exactly"].update(derivedAttributes=derived)),
    )
    yield (
        "DRAListTypeAttributes",
        "strings",
        "slice",
        do(lambda o: device(o).update(attributes={"links": {"strings": ["a", "b"]}})),
    )
    yield (
        "DRAPartitionableDevicesType",
        "partitionTypeAttribute",
        "slice",
        do(lambda o: spec(o).update(partitionTypeAttribute=f"{DOMAIN}/profile")),
    )
    yield (
        "DRAOptionalNodeOperations",
        "skipNodeOperations",
        "slice",
        do(lambda o: spec(o).update(skipNodeOperations=["NodePrepareResources"])),
    )
    yield (
        "DRANodeAllocatableResources",
        "nodeAllocatableResources",
        "slice",
        do(lambda o: device(o).update(nodeAllocatableResources={"cpu": {"overhead": {"perPod": "1"}}})),
    )
    yield (
        "DRADeviceCompatibilityGroups",
        "compatibilityGroups",
        "slice",
        do(lambda o: consumption(o)[0].update(compatibilityGroups=["a"])),
    )


def at_limits() -> Iterator[tuple[str, str, Breaker]]:
    """Valid objects with lists and strings exactly at the API server's limits (an off-by-one shows here)."""
    yield (
        "requests_32",
        "claim",
        do(
            lambda o: claim_of(o).update(
                requests=many(32, lambda k: {"name": f"r{k}", "exactly": {"deviceClassName": "c"}}),
                constraints=[],
                config=[],
            )
        ),
    )
    yield (
        "subrequests_8",
        "claim",
        do(
            lambda o: claim_of(o).update(
                requests=[
                    {"name": "r", "firstAvailable": many(8, lambda k: {"name": f"s{k}", "deviceClassName": "c"})}
                ],
                constraints=[],
                config=[],
            )
        ),
    )
    yield "selectors_32", "class", at(spec, "selectors", many(32, lambda k: {"cel": {"expression": "true"}}))
    yield (
        "constraints_32",
        "claim",
        do(lambda o: claim_of(o).update(constraints=many(32, lambda k: {"matchAttribute": f"{DOMAIN}/m"}))),
    )
    yield "config_32", "class", at(spec, "config", many(32, lambda k: {"opaque": {"driver": "a.b", "parameters": {}}}))
    yield "devices_128", "slice", do(lambda o: on_all_nodes(o).update(devices=many(128, lambda k: {"name": f"d{k}"})))
    yield (
        "devices_64_taints",
        "slice",
        do(
            lambda o: spec(o).update(
                devices=many(64, lambda k: {"name": f"d{k}", "taints": [{"key": "k", "effect": "NoSchedule"}]})
            )
        ),
    )
    yield "attributes_32", "slice", at(device, "attributes", {f"a{k}": {"int": k} for k in range(32)})
    yield (
        "names_at_max",
        "slice",
        do(
            lambda o: device(o).update(
                name="d" * 63,
                attributes={("x" * 50 + ".example.com")[:63] + "/" + "i" * 32: {"string": "s" * 64}},
                taints=many(16, lambda k: {"key": f"k{k}", "value": "v" * 63, "effect": "NoSchedule"}),
                bindingConditions=many(4, lambda k: f"c{k}"),
                bindingFailureConditions=many(4, lambda k: f"f{k}"),
            )
        ),
    )
    yield (
        "counter_sets_8",
        "slice",
        do(
            lambda o: (
                spec(o).update(
                    sharedCounters=many(
                        8, lambda k: {"name": f"s{k}", "counters": {f"c{j}": {"value": "1"} for j in range(32)}}
                    )
                )
                or spec(o).pop("devices", None)
            )
        ),
    )
    yield (
        "consumptions_2",
        "slice",
        at(
            device,
            "consumesCounters",
            many(2, lambda k: {"counterSet": f"s{k}", "counters": {f"c{j}": {"value": "1"} for j in range(32)}}),
        ),
    )
    yield (
        "valid_values_10",
        "slice",
        do(lambda o: policy(o, {"default": "1Gi", "validValues": [f"{k}Gi" for k in range(1, 11)]})),
    )
    yield "expression_10k", "class", do(lambda o: selector_expr(o, '"' + "a" * (10 * 1024 - 8) + '" != ""'))
    yield (
        "parameters_10k",
        "class",
        do(
            lambda o: spec(o).update(config=[{"opaque": {"driver": "a.b", "parameters": {"b": "x" * (10 * 1024 - 8)}}}])
        ),
    )
    yield "names_253", "claim", set_meta("name", ".".join(["a" * 63] * 4)[:253])
    for empty in (None, []):
        label = "null" if empty is None else "empty"
        yield f"optional_lists_{label}", "claim", do(lambda o, e=empty: claim_lists(o, e))
        yield (
            f"optional_lists_{label}",
            "slice",
            do(
                lambda o, e=empty: device(o).update(
                    taints=e, consumesCounters=e, bindingConditions=e, bindingFailureConditions=e
                )
            ),
        )
        yield (
            f"optional_maps_{label}",
            "slice",
            do(
                lambda o, e=empty: device(o).update(
                    attributes=None if e is None else {}, capacity=None if e is None else {}
                )
            ),
        )
        yield f"optional_lists_{label}", "class", do(lambda o, e=empty: spec(o).update(selectors=e, config=e))
        yield (
            f"optional_meta_{label}",
            "template",
            do(
                lambda o, e=empty: meta(o).update(
                    labels=None if e is None else {}, annotations=None if e is None else {}
                )
            ),
        )
