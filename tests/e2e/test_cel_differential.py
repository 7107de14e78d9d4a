"""CEL differential test (issue 16, item 2, first part): gpupolicy's CEL against Kubernetes' own code.

A table of hand-written edge cases (issue 16's classes 1-3) and the ordinary selectors of ``examples/*/policy.yaml``
is judged by gpupolicy (``compile_expression`` in the selector environment, then ``evaluate_devices``) and by the test
bed's oracle (``tests/e2e/celoracle``: the API server's DeviceClass validation and the allocator's ``DeviceMatches``),
over the slices of two simulated H100 nodes (full GPUs, dynamic MIG, time-sliced and MPS shares with consumable
capacity). An expression agrees when the compile verdicts agree and, when both accept it, every device gives the
same result (true, false, or an error: error texts are not compared yet).

Every current disagreement is listed in ``KNOWN_DIFFERENCES`` with its class of issue 16, so the test passes today,
fails when a new difference appears, and fails when a listed one is fixed (remove it from the list then).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpupolicy.plugin.kubelet.discovery import build_inventory
from gpupolicy.plugin.kubelet.driver import default_publish_for, open_nvml
from gpupolicy.policy.builder import NodeRef, build_slices
from gpupolicy.policy.cel import CelRuntimeError, compile_expression
from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.policy.gpu import EXCLUSIVE
from gpupolicy.policy.k8s.dump import to_wire
from gpupolicy.policy.k8s.slice import ResourceSlice
from gpupolicy.policy.k8s.view import gather_pools
from tests.e2e.celoracle import EvalError, Matches, Verdict, judge
from tests.e2e.test_slices_accepted import h100_node_gpus, mixed_sharing

pytestmark = pytest.mark.testbed

REPO = Path(__file__).resolve().parents[2]
DRIVER = "gpu.gpupolicy.dev"
SIM_SPEC = "3xH100-80GB,3xH100-80GB:mig,2xH100-80GB"
A = f'device.attributes["{DRIVER}"]'
C = f'device.capacity["{DRIVER}"]'
EMPTY = "device.driver.substring(0, 0)"  # "" that is not a constant, so nothing is folded at compile time

# Issue 16's classes: 1 = the API server refuses, gpupolicy accepts; 2 = Kubernetes accepts, gpupolicy refuses;
# 3 = both accept, a device's result differs.
REFUSED_ONLY_BY_K8S, REFUSED_ONLY_BY_US, RUNTIME = 1, 2, 3

# (expression, the class of issue 16 it differs in today, or None where gpupolicy agrees with Kubernetes)
EDGE_CASES: list[tuple[str, int | None]] = [
    # class 1: cost estimates, missing member forms, folded constants, dyn results, heterogeneous literals
    ("type(device.driver) == string", None),  # fixed: the cost estimate is cel-go's, with Kubernetes' sizes
    ('["a", "b"].join(",") == "a,b"', None),
    (f'{C}.memory != quantity("1Gi")', None),
    (f'{C}.memory == quantity("1Gi")', None),
    ('quantity("1Gi").sign() == 1', None),  # fixed: sign is global only, as Kubernetes declares it
    ('sign(quantity("1Gi")) == 1', None),
    ('bool("yes")', None),
    ('int(" 1") == 1', None),  # fixed: folded at compile time with Go's ParseInt
    ("uint(-1) == 1u", None),
    ('int("0x10") == 16', None),
    ("dyn(true)", None),
    ('(device.driver == "x" ? 1 : "a") == 1', None),
    ('[1, "a"].size() == 2', None),
    ('{"a": 1, "b": "x"}.size() == 2', None),
    ('[1, 2]["a"] == 1', None),
    ('{"a": 1}[1] == 1', None),
    ('([1.0] + [b""]).size() == 2', None),  # fixed: list + list needs one element type
    ("[[dyn(1)], [2]].size() == 2", None),
    ('[dyn(1), "a"].size() == 2', None),  # fixed: homogeneity is exact, dyn() mixes only with dyn()
    (f'["gpu", {A}.type].size() == 2', None),  # fixed: an attribute value is `any`, not `string`
    (f"{A}.productName.exists(c, true)", None),  # fixed: `any` cannot be a comprehension's range
    ('{1: 2}[?"a"].orValue(0) > 0', None),  # fixed: the key of an optional index is type-checked
    ("[1.5].sum() == 1", None),  # fixed: list(T).sum() is T
    ("2.0 + [].sum() > 1.0", None),
    ("[optional.of(1).value(), 2].size() == 2", None),  # optionals carry their value's type
    (f'{EMPTY}.lastIndexOf("a") == -1', None),  # fixed: lastIndexOf on a shorter string is -1, not an error
    ('"abc".indexOf("", 5) == 3', None),
    ('url("https://a/%7e").getEscapedPath() == "/%7e"', None),  # fixed: the path as written, as Go's EscapedPath
    ('url("/x?a=1;b=2").getQuery().size() == 0', None),  # fixed: Go's Query() skips a pair with ';'
    ('isURL("http://a/b?x=%zz")', None),  # fixed: Go does not check the query's escapes
    ('"%s".format([[device.driver, 2.5]]) == "[\\"gpu.gpupolicy.dev\\", 2.500000]"', None),  # fixed: %s lists
    (f'"%s".format([type({A}.type)]) == "string"', None),  # fixed: %s of a type is its name
    ('quantity("4").sub(-9223372036854775808).isLessThan(quantity("1E"))', None),  # Go's int64 negation wraps
    # add/sub give a pointer quantity in Kubernetes, which the value type's Equal cannot take
    ('quantity("0") == quantity("1").sub(1)', None),
    ('quantity("1").sub(1) == quantity("0")', None),
    ('quantity("2") in [quantity("1").add(1)]', None),
    (f'quantity("0") == {C}.memory.add(0)', None),
    ('string(quantity("1")) == "1"', None),  # fixed: string() has no quantity, semver, url or type overload
    ('string(semver("1.0.0")) == "1.0.0"', None),
    (f'{A}.productName.split(" ").all(a, {A}.productName.split(" ").exists(b, a != b))', None),  # unbounded sizes
    ("optional.none() == optional.none()", None),
    (f"{A}.all(a, {A}.all(b, {A}.all(c, a.matches(c))))", None),  # 1,219,812: just over the limit
    # format calls checked at compile time by the static types of a literal argument list (cel-go's validator)
    ('"%f".format([1]) == ""', None),
    ('"%d".format([1.5]) == ""', None),
    ('"%d".format([[1]]) == ""', None),
    ('"%x".format([true]) == ""', None),
    ('"%o".format(["a"]) == ""', None),
    ('"%b".format([1.5]) == ""', None),
    ('"%e".format([1u]) == ""', None),
    ('"%s".format([[quantity("1")]]) != ""', None),
    ('"%s".format([{"a": semver("1.0.0")}]) != ""', None),
    ('"%s".format([optional.of(1)]) != ""', None),
    (f'"%d".format([{A}.index]) != ""', None),
    (f'"%s".format([{A}.productName]) != ""', None),
    ('"%d".format([quantity("1")]) != ""', None),
    ('"%.2".format([1.0]) == ""', None),
    ('"%q".format([]) == ""', None),
    ('"%".format([1]) == ""', None),
    ('"%.2%".format([1]) == ""', None),
    ('"%s %s".format([1]) == ""', None),
    ('"%d".format([1, 2]) == ""', None),
    ('"%d".format([1.0 + 1.0]) == ""', None),
    ('"%5d".format([1]) == ""', None),
    ('"%d".format([null]) == ""', None),
    # cel-go's parser: a run of ! or - is one operator (or none); a mixed run is a syntax error
    ("-!true", None),
    (f"!-{A}.index == 1", None),
    ("--9223372036854775808 == 1", None),
    ('{"a": 1}[?1].hasValue()', None),
    ("[1][?0u].hasValue()", None),
    ('[1][?"a"].hasValue()', None),
    ("{1: 1}[?1u].hasValue()", None),
    ('optional.of({"a": 1})[?1].hasValue()', None),
    ("[1, dyn(1)].size() == 2", None),  # homogeneous literals: cel-go wants equal types
    ("[[1], [dyn(1)]].size() == 2", None),
    # class 2: nesting limits, run-time checked constants, nested comprehensions, missing libraries
    ("!" * 150 + "true", None),
    ("1" + " + 1" * 200 + " > 0", None),
    ('semver("bad") == semver("1.0.0")', None),
    ('quantity("bad") == quantity("1")', None),
    (
        f'{A}.productName.split(" ").all(a, {A}.productName.split(" ").all(b, '
        f'{A}.productName.split(" ").exists(c, a + b + c != "")))',
        None,
    ),
    (f'{A}.all(a, {A}.all(b, {A}.all(c, a + b + c != "" && a != c)))', None),  # 957,668: just under the limit
    (f"{A}.all(k, v, {A}.all(k2, v2, k != k2 || v == v2))", None),  # cel-go's aliased paths: the key sized as a value
    ("lists.range(3).size() == 3", None),
    ("[3, 1, 2].sort() == [1, 2, 3]", None),
    ("[1, 1, 2].distinct().size() == 2", None),
    ("[[1], [2]].flatten().size() == 2", None),
    ("[1, 2, 3].slice(0, 2) == [1, 2]", None),
    ('duration("1h") > duration("1m")', None),
    ('timestamp("2024-01-01T00:00:00Z") < timestamp("2025-01-01T00:00:00Z")', None),
    ("[?optional.of(1)].size() == 1", None),
    ('{?"a": optional.of(1)}.size() == 1', None),
    # missing libraries, added: ext.Lists v3, timestamps and durations, optional syntax and functions
    ("lists.range(-1).size() == 0", None),
    ("lists.range(5).slice(1, 3).reverse() == [2, 1]", None),
    ("[1, 2, 3].slice(0, 4) == [1, 2]", None),
    ("[1, 2, 3].slice(-1, 2) == [1, 2]", None),
    ("[1, 2, 3].slice(2, 1) == [1, 2]", None),  # refused by both: cel-go estimates end - start as a uint64
    ("[1, 2].flatten().size() == 2", None),
    ("[[1], [2, [3]]].flatten(2) == [1, 2, 3]", None),
    ("[[1]].flatten(-1).size() == 1", None),
    ("[[1], [2]].sort().size() == 2", None),
    ("dyn([[1], [2]]).sort().size() == 2", None),
    ("[3, 1, 2].sortBy(x, -x) == [3, 2, 1]", None),
    ("1.sortBy(x, x) == [1]", None),
    (  # Go's unstable pdqsort order
        "lists.range(64).sortBy(x, x % 7) == ["
        "56, 28, 49, 21, 63, 42, 0, 7, 14, 35, 8, 57, 50, 43, 1, 15, 22, 29, 36, 9, "
        "37, 2, 16, 23, 51, 58, 44, 30, 24, 10, 52, 31, 45, 59, 38, 3, 17, 32, 46, 39, "
        "4, 60, 11, 53, 18, 25, 19, 5, 40, 61, 47, 26, 33, 12, 54, 55, 27, 13, 6, 34, "
        "41, 20, 62, 48]",
        None,
    ),
    (f'{A}.productName.split(" ").sortBy(w, w.size())[0] != ""', None),
    (f'{A}.productName.split(" ").sort().first().hasValue()', None),
    (f'{A}.productName.split(" ").reverse().last().value() != ""', None),
    ("[dyn(1.0), dyn(1)].distinct().size() == 1", None),
    ("[].first().hasValue() == false", None),
    ("optional.unwrap([optional.of(1), optional.none()]) == [1]", None),
    ("[1].unwrapOpt() == [1]", None),
    ('duration("1x") > duration("1m")', None),
    ('duration("2562048h") > duration("1m")', None),
    ('duration("2562047h") + duration("2562047h") > duration("1m")', None),
    (f'duration({A}.productName) > duration("1m")', None),
    ('string(duration("1.5ms")) == "0.0015s" && int(duration("1s")) == 1000000000', None),
    ('string(timestamp("2024-12-31T12:00:00,5+01:00")) == "2024-12-31T12:00:00.5+01:00"', None),
    ('timestamp("2024-02-30T12:00:00Z") > timestamp(0)', None),
    ('timestamp("9999-12-31T23:59:59Z") + duration("1s") > timestamp(0)', None),
    ('timestamp("9999-12-31T23:59:59Z") - timestamp("0001-01-01T00:00:00Z") > duration("1s")', None),
    (f"timestamp({A}.productName.size() * 100000000000) > timestamp(0)", None),
    ('int(timestamp("1969-12-31T23:59:59.5Z")) == -1', None),
    ('timestamp("2024-03-01T00:00:00+05:30").getHours() == 18', None),
    ('timestamp("2024-03-01T00:00:00Z").getHours("America/New_York") == 19', None),
    ('timestamp("2024-01-01T00:00:00Z").getHours("-1:30") == 22', None),
    ('timestamp("2024-03-01T00:00:00Z").getHours("Mars/Base") == 5', None),
    ('timestamp("0001-01-01T00:00:00Z").getFullYear("-01:00") == 0', None),
    ('duration("-90m").getHours() == -1 && duration("1.5s").getMilliseconds() == 1500', None),
    ('-duration("1h") < duration("0")', None),
    ('[duration("1s"), duration("2s")].sum() == duration("3s")', None),
    ('"%s".format([timestamp("2024-01-01T00:00:00Z")]) == "2024-01-01T00:00:00Z"', None),
    ('"%d".format([duration("1s")]) == "1"', None),  # fixed: %d is checked against the static type, as cel-go
    ("{timestamp(0): 1}.size() == 1", None),
    ('{1.0: "a"}[1.0] == "a" && !(dyn(1) in {1.0: "a"})', None),  # an int does not find a double key
    ("{null: 1}.size() == 1 && null in {null: 1}", None),
    ("{null: 1}[null] == 1", None),  # cel-go plans a constant null qualifier and fails
    (f"{{timestamp(0): 1}}[timestamp({A}.productName.size() * 0)] == 1", None),  # invalid qualifier type
    ("{[1]: 1}.size() == 1", None),  # fixed: list keys compile, as in cel-go (map keys we refuse)
    ("optional.of(1).optMap(x, x + 1).value() == 2", None),
    ("optional.of(1).optFlatMap(x, x + 1).value() == 2", None),
    (f"{A}.?productName.optMap(p, p.size()).orValue(0) > 0", None),
    (f"[?{A}.?nokey, ?{A}.?productName].size() == 1", None),
    (f'{{?"p": {A}.?nokey}}.size() == 0', None),
    ("[?1].size() == 1", None),
    ('[1, 2,].size() == 2 && {"a": 1,}.size() == 1 && [,].size() == 0', None),
    ("size([1],) == 1", None),
    ('has({"a": 1}.?a)', None),
    (f"device.attributes.`{DRIVER}`.productName == {A}.productName", None),
    ("{'a b': 1}.`a b` == 1 && {'a/b': 1}.`a/b` == 1", None),
    ("5. == 5.0", None),
    ('[dyn(1), "a"].size() == 2', None),  # cel-go's validator: dyn is a type of its own in a literal
    ("[[1], [dyn(1)]].size() == 2 || [[1], []].size() == 2", None),
    (f'[{A}.productName, "a"].size() == 2', None),
    ('{"a": 1, "b": dyn(2)}.size() == 2', None),
    ("[optional.of(dyn(1)), optional.of(1)].size() == 2", None),
    ("[optional.none(), optional.of(1)].size() == 2 && [{}, {'a': 1}].size() == 2", None),
    ("[1, 2].exists_one(i, v, v == 1)", None),
    ("1.7976931348623157e309 > 0.0", None),
    ('[?optional.of(1), "a"].size() == 2', None),
    ('optional.of(1).value() == "a"', None),
    ("optional.none().value()", None),
    ("device.?nosuch.hasValue()", None),
    (f'{C}.?memory.orValue(quantity("0")).compareTo(quantity("1Gi")) > 0', None),
    (f"{A}.?productName.or(optional.of(1)).hasValue()", None),
    ('{"a": {"b": 1}}.?a.z.hasValue()', None),
    ('{"a": 1}.?a.z.hasValue()', None),
    ("[1, 2].includes(1)", None),
    ('["a", "b"].sum() == "ab"', None),
    ("[[1], [2]].isSorted()", None),
    ('[{"a": 1}].max().size() == 1', None),
    ('[duration("1s")].slice(0, 0).sum() == duration("0s")', None),
    ('format.dns1123Label().validate("a.b").value() == ["must not contain dots"]', None),
    ('format.qualifiedName().validate("/x").value() == ["prefix part must be non-empty"]', None),
    ('format.uri().validate("x").value() == ["parse \\"x\\": invalid URI for request"]', None),
    ('format.datetime().validate("2024-02-29t10:00:00.5+01:00").hasValue() == false', None),
    ('format.named("uuid").value().validate("x").hasValue()', None),
    ("format.dns1123Label().validate(1).hasValue()", None),
    ("math.greatest(1, 2) == 2", None),
    ('base64.encode(b"a") == "YQ=="', None),
    # nesting: cel-go's parser limits (250 nested rules, 250 nested operations), at and one past each threshold
    ("!" * 10000 + "true", None),
    ("-" * 9000 + "1 == 1", None),
    (" && ".join(["true"] * 1270), None),
    ("1" + " + 1" * 249 + " > 0", None),
    ("1" + " + 1" * 250 + " > 0", None),
    ("true" + " == true" * 250, None),
    ("true" + " == true" * 251, None),
    ("[" * 250 + "]" * 250 + " == []", None),
    ("[" * 251 + "]" * 251 + " == []", None),
    ("(" * 249 + "true" + ")" * 249, None),
    ("(" * 250 + "true" + ")" * 250, None),
    ("string(" * 249 + '"ab"' + ")" * 249 + ' == "ab"', None),
    ("string(" * 250 + '"ab"' + ")" * 250 + ' == "ab"', None),
    ("false ? true : " * 249 + "true", None),
    ("false ? true : " * 250 + "true", None),
    ("(true ? " * 248 + "true" + " : false)" * 248, None),
    ("(true ? " * 249 + "true" + " : false)" * 249, None),
    ("1 + (" * 124 + "1" + ")" * 124 + " > 0", None),
    ("1 + (" * 125 + "1" + ")" * 125 + " > 0", None),
    ("(" * 248 + "1" + " + 1)" * 248 + " > 0", None),
    ("(" * 249 + "1" + " + 1)" * 249 + " > 0", None),
    ('{"k": ' * 249 + "1" + "}" * 249 + " == {}", None),
    ('{"k": ' * 250 + "1" + "}" * 250 + " == {}", None),
    ('"a"' + ".lowerAscii()" * 249 + ' == "a"', None),
    ('"a"' + ".lowerAscii()" * 250 + ' == "a"', None),
    ("dyn([1])" + "[0]" * 249 + " == 1", None),
    ("dyn([1])" + "[0]" * 250 + " == 1", None),
    ("device" + ".driver" * 1 + ".size()" + " + 1" * 248 + " > 0", None),
    ("!(" * 249 + "true" + ")" * 249, None),
    ("[!!true && !false ? " * 120 + "[]" + " : []]" * 120 + " != []", None),
    # constant quantity()/semver() arguments are checked when the expression runs
    ('quantity("1gi").isInteger()', None),
    ('semver("1.2") == semver("1.2.0")', None),
    ('semver("x", true) == semver("1.2.0")', None),
    (f'{A}.driverVersion == semver("bad") || true', None),
    ('device.driver == "nope" && quantity("bad") == quantity("1")', None),
    ('isQuantity("bad") || isSemver("bad")', None),
    ('ip("bad") == ip("1.2.3.4")', None),
    ('cidr("bad") == cidr("1.2.3.0/24")', None),
    ('url("bad") == url("http://x")', None),
    ('"abc".matches("[")', None),
    ('"abc".find("[") == ""', None),
    ('"%f".format(["abc"]) == ""', None),
    ('"%d".format([dyn(1.5)]) == ""', None),
    (f'"%d".format([dyn({A}.productName)]) == ""', None),
    ('"%s".format([type(1)]) == "int"', None),
    (f'("%f" + {EMPTY}).format([1]) == ""', None),
    ('"%d".format(device.driver.size() > 0 ? [1] : [2]) == "1"', None),
    ("!!1 == 1", None),
    ("- 9223372036854775808 < 0", None),
    ("!!(device.driver.size() == 17)", None),
    ('{1.0: "a"}[1.0] == "a"', None),
    ("{null: 1}.size() == 1", None),
    ("{[1]: 1}.size() == 1", None),
    ("1.0 in {1.0: 1}", None),
    ('{1.5: "a"}.size() == 1', None),
    # class 3: run-time results
    ('semver("1.0.0") != 1', None),
    (f'{A}.driverVersion != "580"', None),  # fixed: != is "not (== is true)", as in cel-go
    ('quantity("1") != "1"', None),
    ('ip("1.2.3.4") != 1', None),
    ("-9223372036854775808 % -1 == 0", None),
    ('quantity("1.5Gi").isInteger()', None),
    ('quantity("1.5Gi").asInteger() > 0', None),
    (f"{C}.memory.isInteger()", None),
    ('"anything" in device.attributes', None),
    ('{"a": 1, "a": 2}.size() == 1', None),
    ("'''a\nb''' == \"a\\nb\"", None),
    ('"%e".format([1234.5]) == "1.234500e+03"', None),
    ('"%.2f".format([1234.5]) == "1234.50"', None),
    ('quantity("1") in [quantity("1")]', None),
    ('semver("1.0.0") in [semver("1.0.0")]', None),
    (f'int({EMPTY} + " 1") == 1', None),
    (f'int({EMPTY} + "1_000") == 1000', None),
    (f'int({EMPTY} + "\u0661\u0662") == 12', None),
    (f'double({EMPTY} + "1e400") > 0.0', None),
    (f'double({EMPTY} + "0x1p-2") == 0.25', None),
    # quantities: isInteger/asInteger/asApproximateFloat follow Go's representation (int64Amount or inf.Dec)
    ('quantity("1000m").isInteger()', None),
    ('quantity("1.0").isInteger()', None),
    ('quantity("1k").asInteger() == 1000', None),
    ('quantity("1E").isInteger()', None),
    ('quantity("10E").isInteger()', None),
    ('quantity("9223372036854775807").isInteger()', None),
    ('quantity("922337203685477580").isInteger()', None),
    ('quantity("1Ti").isInteger()', None),
    ('quantity("1Pi").isInteger()', None),
    ('quantity("1e3").isInteger()', None),
    ('quantity("1e-3").isInteger()', None),
    ('quantity("0.5").add(quantity("0.5")).isInteger()', None),
    ('quantity("1.5Gi").add(quantity("1")).isInteger()', None),
    ('quantity("1").add(1).isInteger()', None),
    ('quantity("1k").add(quantity("1m")).isInteger()', None),
    ('quantity("9223372036854775807").add(1).isInteger()', None),
    ('quantity("9223372036854775807").add(1).asApproximateFloat() == 9223372036854775808.0', None),
    ('quantity("3.3").asApproximateFloat() == 3.3000000000000003', None),
    ('quantity("123456789123456789m").asApproximateFloat() == 123456789123456.78', None),
    ('quantity("1.5Gi").asApproximateFloat() == 1610612736.0', None),
    ('quantity("-16Ei").asApproximateFloat() < -9.2e18', None),
    ('quantity("-16Ei") == quantity("-8Ei")', None),
    ('sign(quantity("0.0Ki")) == 0 && !quantity("0.0Ki").isInteger()', None),
    ('quantity("1").sub(quantity("1.5Gi")).isInteger()', None),
    (f"{C}.memory.asApproximateFloat() > 0.0", None),
    (f'{C}.memory.add(quantity("0.5")).isInteger()', None),
    (f"{C}.memory.asInteger() > 0", None),
    ('cel.bind(q, quantity("1"), q.compareTo(quantity("1.5")) < 0 && q.isInteger())', None),
    # device.attributes and device.capacity: in, has(), size() and iteration
    ('"anything" in device.capacity', None),
    (f'"{DRIVER}" in device.attributes', None),
    (f'"{DRIVER}" in device.capacity', None),
    ("has(device.attributes.x)", None),
    ("has(device.capacity.x)", None),
    ("device.attributes.?x.hasValue()", None),
    ('device.attributes[?"x"].hasValue()', None),
    ("device.attributes.size() == 1", None),
    ("device.capacity.size() == 1", None),
    ("size(device.attributes) == 0", None),
    ("device.attributes.exists(k, true)", None),
    ('device.attributes.exists(k, k == "x")', None),
    ('device.capacity.all(k, k != "")', None),
    ("device.attributes.map(k, k).size() == 1", None),
    ('device.attributes.filter(k, k == "x").size() == 0', None),
    ("device.attributes.all(k, v, v.size() > 0)", None),
    ('device.attributes["x"].size() == 0', None),
    ('"x" in device.attributes["x"]', None),
    (f'"index" in {A}', None),
    (f'{A}.exists(k, k == "index")', None),
    (f'{C}.exists(k, k == "memory")', None),
    (f"has({A}.index)", None),
    ("device.attributes == device.attributes", None),
    # map keys carry their type, as in cel-go: 1, 1u, 1.0 and true are four keys
    ('{dyn(1): "a", dyn(1u): "b"}.size() == 2', None),
    ('{dyn(1): "a", dyn(1u): "b"}[1] == "b"', None),
    ('{dyn(1): "a", dyn(1u): "b"}[1u] == "b"', None),
    ('{dyn(1): "a", dyn(1.0): "b"}.size() == 2', None),
    ('{dyn(1): "a", dyn(1u): "b", dyn(1.0): "c"}[dyn(1.0)] == "c"', None),
    ('{dyn(1): "a", dyn(true): "b"}[true] == "b"', None),
    ('{dyn(1u): "a", dyn(1.0): "b"}[1] == "a"', None),
    ('{dyn(1.0): "b", dyn(1u): "a"}[1] == "a"', None),
    ('{dyn(1): "a", dyn(1u): "b"} == {dyn(1): "a", dyn(1u): "b"}', None),
    ('{dyn(1): "a", dyn(1u): "b"} == {1: "a"}', None),
    ('{dyn(1): "a", dyn(1u): "b"}.exists(k, k == dyn(1u))', None),
    ('dyn(1u) in {dyn(1): "a", dyn(1u): "b"}', None),
    ('{dyn(1.0): "a", dyn(1.0): "b"}[1.0] == "b"', None),
    ("{dyn(1.5): 1}[1.5] == 1", None),
    ("{dyn([1]): 1}.size() == 1", None),
    ('dyn({1.0: "a"})[1] == "a"', None),
    ('dyn({1: "a"})[1.0] == "a"', None),
    ('dyn({1u: "a"})[1.0] == "a"', None),
    ('dyn({1: "a"})[1u] == "a"', None),
    ('dyn({1: "a"})[1.5] == "a"', None),
    ('1.5 in dyn({1: "a"})', None),
    ("dyn(-1) in {1u: 1}", None),
    ("dyn(true) in {1: 1}", None),
    ('{-1: "a"}[dyn(18446744073709551615u)] == "a"', None),
    ('dyn({1: "a"})[?1u].hasValue()', None),
    ('{1: "a", 1: "b"}[1] == "b"', None),
    (f"cel.bind(x, {C}.shares, true)", None),  # fixed: cel.bind is lazy, the unread init is not evaluated
    ("cel.bind(x, 1 / 0, device.allowMultipleAllocations || x == 1)", None),
    (f"{C}.shares in []", None),  # fixed: `x in []` is the constant false, x is not evaluated
    (f'{A}.driverVersion in [ip("::1")]', None),  # fixed: an element comparison that errors is no match
    ('1 <= double("NaN")', None),  # fixed: NaN is not ordered, an error as in cel-go
    (f'{A}.?type.orValue({A}.profile) == "gpu"', None),  # fixed: orValue's alternative is evaluated lazily
    # ordinary selectors, for the agreement rate and as a check that the common case stays exact
    (f"{A}.nokey == 1", None),
    (f"{A}.?nokey.orValue(1) == 1", None),
    (f'has({A}.profile) && {A}.profile.startsWith("1g")', None),
    (f'{A}.driverVersion.compareTo(semver("550.0.0")) >= 0', None),
    (f'{A}.productName.lowerAscii().matches("^.*h100.*$")', None),
    (f'cel.bind(g, {A}, g.type == "mig" && g.profile.startsWith("1g"))', None),
    (f'{C}.memory.compareTo(quantity("40Gi")) >= 0', None),
    ("device.allowMultipleAllocations", None),
    ('device.attributes["nope.example.com"].size() == 0', None),
]

# expression -> class of issue 16, for every expression where gpupolicy and the oracle disagree today.
KNOWN_DIFFERENCES: dict[str, int] = {expression: cls for expression, cls in EDGE_CASES if cls is not None}


def example_selectors() -> list[str]:
    """Every device selector of the examples' policies (``expression`` and ``selector`` strings without ``claim``)."""

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expression", "selector") and isinstance(value, str):
                    yield value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    found: list[str] = []
    for path in sorted(REPO.glob("examples/*/policy.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            found += [e for e in walk(doc) if "claim." not in e and e not in found]
    return found


def rendered_slices() -> list[ResourceSlice]:
    """A ``sim:`` node as ``gpupolicy discover -o yaml`` renders it, plus the mixed node of the slices test."""
    nvml = open_nvml("sim:" + SIM_SPEC, "sim-node", None)
    gpus = nvml.gpus()
    inventory = build_inventory(gpus, default_publish_for(gpus), driver=DRIVER)
    sim = build_slices(
        "sim-node",
        inventory.gpus,
        publish_for=lambda g, _v: inventory.publish.get(g.uuid, EXCLUSIVE),
        driver=DRIVER,
    )
    mixed = build_slices(NodeRef("mixed-node"), h100_node_gpus("mixed-node"), publish_for=mixed_sharing, driver=DRIVER)
    return [*sim, *mixed]


def ours(expression: str, slices: list[ResourceSlice]) -> tuple[bool, dict[str, bool | str]]:
    """gpupolicy's compile verdict and, when it compiles, each device's result (an error as ``"error"``)."""
    try:
        program = compile_expression(expression, env="selector")
    except DiagnosticError:
        return False, {}
    devices = [dev for pool in gather_pools(slices) for dev in pool.devices]
    results = program.evaluate_devices([dev.view for dev in devices])
    return True, {
        f"{dev.id.pool}/{dev.id.device}": "error" if isinstance(r, CelRuntimeError) else bool(r)
        for dev, r in zip(devices, results)
    }


def theirs(verdict: Verdict) -> dict[str, bool | str]:
    return {
        key: "error" if isinstance(r, EvalError) else r.value
        for key, r in verdict.devices.items()
        if isinstance(r, (Matches, EvalError))
    }


def difference(expression: str, verdict: Verdict, slices: list[ResourceSlice]) -> tuple[int, str] | None:
    """None when gpupolicy and Kubernetes agree; else the class of issue 16 and a line saying how they differ."""
    ok, results = ours(expression, slices)
    if verdict.compile.ok and not ok:
        return REFUSED_ONLY_BY_US, "Kubernetes accepts, gpupolicy refuses"
    if ok and not verdict.compile.ok:
        first_line = verdict.compile.error.splitlines()[0]
        return REFUSED_ONLY_BY_K8S, f"the API server refuses ({first_line}), gpupolicy accepts"
    if not ok:
        return None
    expected = theirs(verdict)
    if verdict.eval_compile_error:
        return RUNTIME, f"the allocator cannot compile it: {verdict.eval_compile_error}"
    differing = {k: (results.get(k), v) for k, v in expected.items() if results.get(k) != v}
    if differing or results.keys() != expected.keys():
        sample = dict(sorted(differing.items())[:3])
        return RUNTIME, f"{len(differing)} devices differ (gpupolicy, Kubernetes), e.g. {sample}"
    return None


def test_gpupolicy_cel_agrees_with_kubernetes(testbed_bin: Path) -> None:
    table = [expression for expression, _ in EDGE_CASES]
    expressions = table + [e for e in example_selectors() if e not in table]
    slices = rendered_slices()
    verdicts = judge(testbed_bin, expressions, [to_wire(s) for s in slices])
    # Sanity: the oracle saw every device gpupolicy sees, so the per-device comparison covers them all.
    accepted = next(v for v in verdicts if v.compile.ok and not v.eval_compile_error)
    assert len(accepted.devices) == sum(len(p.devices) for p in gather_pools(slices))

    found: dict[str, int] = {}
    for expression, verdict in zip(expressions, verdicts):
        diff = difference(expression, verdict, slices)
        if diff is not None:
            found[expression] = diff[0]
            print(f"class {diff[0]}: {expression!r}: {diff[1]}")
    agreed = len(expressions) - len(found)
    print(f"CEL differential: {agreed}/{len(expressions)} expressions agree ({100 * agreed / len(expressions):.1f}%)")

    new = {e: c for e, c in found.items() if KNOWN_DIFFERENCES.get(e) != c}
    fixed = [e for e in KNOWN_DIFFERENCES if e not in found]
    assert not new, f"new differences from Kubernetes (fix them, or list them in KNOWN_DIFFERENCES): {new}"
    assert not fixed, f"differences listed in KNOWN_DIFFERENCES no longer occur (remove them): {fixed}"
