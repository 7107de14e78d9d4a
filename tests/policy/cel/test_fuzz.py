"""Fuzzing: arbitrary text and random well-formed expressions never crash or hang.

The only outcomes allowed are a compiled program or a ``DiagnosticError``, and then a bool or a
``CelRuntimeError`` from evaluation.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpupolicy.policy.cel import CelRuntimeError, compile_expression
from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.policy.quantity import Quantity
from gpupolicy.policy.semver import Semver

D = "gpu.nvidia.com"
DEVICE = DeviceView(
    D,
    {D: {"type": "gpu", "index": 3, "flag": True, "v": Semver.parse("1.2.3"), "name": "A100 SXM"}},
    {D: {"memory": Quantity("40Gi")}},
)
FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def outcome(expression: str) -> object:
    try:
        program = compile_expression(expression)
    except DiagnosticError as err:
        assert err.diagnostics and all(d.code.startswith("cel_") for d in err.diagnostics)
        return err.diagnostics[0].code
    try:
        result = program.evaluate(DEVICE)
    except CelRuntimeError as err:
        assert err.code in ("cel_runtime_error", "cel_cost_exceeded", "cel_type_error")
        return err.code
    assert isinstance(result, bool)
    (batch,) = program.evaluate_devices([DEVICE])
    assert batch == result
    return result


@FUZZ
@given(st.text(max_size=60))
def test_arbitrary_text(text: str) -> None:
    outcome(text)


_CEL_CHARS = st.sampled_from(list('device.attributes["gpu.nvidia.com"]capacity()[]{}.,:?!&|=<>+-*/%"\'0123456789 xyzu'))


@FUZZ
@given(st.lists(_CEL_CHARS, max_size=80).map("".join))
def test_cel_flavoured_text(text: str) -> None:
    outcome(text)


_ATOMS = st.sampled_from([
    "1", "-7", "2u", "1.5", "true", "false", "null", '"gpu"', "'x'", 'b"ab"', "[1, 2, 3]", "[]", '{"a": 1}', "{}",
    f'device.attributes["{D}"].index', f'device.attributes["{D}"].name', f'device.attributes["{D}"].flag',
    f'device.attributes["{D}"].v', f'device.attributes["{D}"].missing', f'device.capacity["{D}"].memory',
    'device.attributes["other.io"]', "device.driver", "device.allowMultipleAllocations", 'quantity("1Gi")',
    'semver("1.0.0")', "x", "9223372036854775807", "0.0", 'ip("10.0.0.1")', 'cidr("10.0.0.0/8")', "optional.of(1)",
    "optional.none()", "dyn([1, 'a'])",
])  # fmt: skip
_BINARY = ["==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "&&", "||", "in"]
_METHODS = [
    "size()", "lowerAscii()", 'split(",")', 'compareTo(quantity("1"))', "major()", "isInteger()", 'startsWith("A")',
    'matches("^A.*")', "substring(1, 3)", "charAt(2)", "asInteger()", "sign()", 'indexOf("1")', 'join("-")', "max()",
    "sum()", "add(1)", 'isGreaterThan(semver("1.0.0"))', "all(i, v, v == i)", "transformList(i, v, v)",
    "transformMap(k, v, k)", "existsOne(i, v, true)", "hasValue()", "orValue(2)", "family()",
    'containsIP("10.1.1.1")', "masked()", "?name", "?index.orValue(1)",
]  # fmt: skip


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(_BINARY), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(children, st.sampled_from(_METHODS)).map(lambda t: f"{t[0]}.{t[1]}"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(st.sampled_from(["all", "exists", "exists_one", "map", "filter"]), children, children).map(
            lambda t: f"{t[1]}.{t[0]}(x, {t[2]})"
        ),
        st.tuples(children, children).map(lambda t: f"cel.bind(x, {t[0]}, {t[1]})"),
        children.map(lambda c: f"!{c}"),
        children.map(lambda c: f"[{c}, {c}]"),
        children.map(lambda c: f"size({c})"),
        children.map(lambda c: f"int({c})"),
        children.map(lambda c: f"string({c})"),
        st.tuples(children, children).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(children, children).map(lambda t: f"sets.contains({t[0]}, {t[1]})"),
    )


EXPRESSIONS = st.recursive(_ATOMS, _combine, max_leaves=12)


@FUZZ
@given(EXPRESSIONS)
def test_random_expressions(expression: str) -> None:
    outcome(expression)


@FUZZ
@given(EXPRESSIONS, EXPRESSIONS)
def test_random_boolean_combinations(a: str, b: str) -> None:
    outcome(f"({a}) == ({b}) || has(device.attributes.x)")
