"""Spellings for the validation differential: quantities and names around each format's edges, valid and not.

Each rule tries every value once (:func:`tests.e2e.objedit.each`); the verdicts must agree whatever they are.
"""

from __future__ import annotations

from collections.abc import Iterator

from tests.e2e.objedit import (
    Breaker,
    at,
    claim_of,
    counter_sets,
    device,
    each,
    exact,
    fields,
    first_available,
    meta,
    node_selection,
    spec,
)
from tests.e2e.objgen import Obj

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
    # no digits is zero; the exponent is read as int64 and kept in an int32
    "e3",
    ".",
    "-",
    "+",
    "Gi",
    "-.Ki",
    "1e1000",
    "1e3999",
    "1e4294967296",
    "1e9223372036854775808",
)
# resource.ParseQuantity keeps any int32 exponent in its inf.Dec; gpupolicy refuses magnitudes of 10**4000 and
# more rather than compute with numbers of millions of digits: a known disagreement, listed in the test.
QUANTITIES_HUGE = ("1e4000", "1e999999999")


def quantity_rules() -> Iterator[tuple[str, str, Breaker]]:
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
    yield "quantity_huge", "slice", at(capacity, "value", *QUANTITIES_HUGE)


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


EXTENDED_NAMES = (
    "example.com/gpu",
    "gpu",
    "kubernetes.io/gpu",
    "a.kubernetes.io/gpu",
    "deviceclass.resource.kubernetes.io/x",
    "requests.example.com/gpu",
    "example.com/GPU",
    "Example.com/gpu",
    "example.com/" + "g" * 63,
    "example.com/" + "g" * 64,
    "example.com/a/b",
    "a/b",
    "example.com/-x",
)
ENUMS = ("Equal", "Exists", "equal", "", "NoSchedule", "None", "none", "ExactCount", "All", "all", "Exact Count")


def _opaque_of_class(obj: Obj) -> Obj:
    entry: Obj = spec(obj).setdefault("config", [{}])[0]
    opaque: Obj = entry.setdefault("opaque", {"parameters": {}})
    return opaque


def name_rules() -> Iterator[tuple[str, str, Breaker]]:
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
    yield "name_extended_resource", "class", each(lambda o, n: spec(o).update(extendedResourceName=n), *EXTENDED_NAMES)
    yield (
        "enum_toleration_operator",
        "claim",
        each(lambda o, v: fields(o).update(tolerations=[{"key": "k", "operator": v}]), *ENUMS),
    )
    yield (
        "enum_toleration_effect",
        "claim",
        each(lambda o, v: fields(o).update(tolerations=[{"key": "k", "operator": "Exists", "effect": v}]), *ENUMS),
    )
    yield "enum_taint_effect", "slice", each(lambda o, v: device(o).update(taints=[{"key": "k", "effect": v}]), *ENUMS)
    yield "enum_allocation_mode", "template", each(lambda o, v: fields(o).update(allocationMode=v, count=None), *ENUMS)
    yield (
        "name_binding_condition",
        "slice",
        each(lambda o, c: device(o).update(bindingConditions=[c], bindingFailureConditions=["f"]), *CONDITION_NAMES),
    )
