"""The static cost estimate and the limit: what the API server refuses as too complex, gpupolicy refuses when it
compiles the selector, with the stable code ``cel_cost_exceeded`` at the selector's location. The numbers pinned
here are the API server's (checked against the test bed's oracle in ``tests/e2e/test_cel_cost.py``)."""

from __future__ import annotations

import pytest

from gpupolicy.policy.cel import COST_LIMIT, compile_expression, estimate_cost
from gpupolicy.policy.cel.checker import costmath as cm
from gpupolicy.policy.cel.checker.costnode import GoPath, go_append
from gpupolicy.policy.errors import DiagnosticError, Location

A = 'device.attributes["d"]'
WHERE = Location("class.yaml", 9, 21, "spec.selectors[0].cel.expression")


def refusal(expression: str) -> tuple[str, str, Location]:
    with pytest.raises(DiagnosticError) as info:
        compile_expression(expression, WHERE)
    (d,) = info.value.diagnostics
    return d.code, d.message, d.location


@pytest.mark.parametrize(
    "expression",
    [
        "type(device.driver) == string",  # a type compared as a value of unknown size
        '["a", "b"].join(",") == "a,b"',  # a joined element's size is unknown
        'device.capacity["gpu.gpupolicy.dev"].memory != quantity("1Gi")',  # != of a quantity of unknown size
        f"{A}.all(a, {A}.all(b, {A}.all(c, a.matches(c))))",  # 1,219,812
    ],
)
def test_over_the_limit_is_refused_at_the_selector(expression: str) -> None:
    code, message, location = refusal(expression)
    assert code == "cel_cost_exceeded"
    assert location == WHERE
    assert f"exceeds the limit of {COST_LIMIT}" in message


def test_an_unbounded_estimate_says_so() -> None:
    _, message, _ = refusal("type(device.driver) == string")
    assert "estimated cost unbounded" in message
    _, message, _ = refusal(f"{A}.all(a, {A}.all(b, {A}.all(c, a.matches(c))))")
    assert "estimated cost 1219812 exceeds" in message


@pytest.mark.parametrize(
    ("expression", "cost"),
    [
        ("true", 0),
        ('device.driver == "a"', 3),
        ('device.capacity["gpu.gpupolicy.dev"].memory == quantity("1Gi")', 6),  # quantities compare in O(1)
        ('device.capacity["gpu.gpupolicy.dev"]["memory"] != quantity("1Gi")', 5),  # declared size 0
        ("[1, 2, 3].all(x, x > 0)", 26),
        ("[1, 2, 3].exists(x, x > 0)", 29),
        ("[1, 2, 3].exists_one(x, x > 0)", 24),
        ("[1, 2, 3].map(x, x + 1) == [2]", 74),
        (f"{A}.all(k, k == 'a')", 164),
        (f"cel.bind(a, {A}, a.x == 1)", 16),
        (f'{A}.x.matches("a+")', 11),
        (f"{A}.all(k, v, k == k)", 388),  # cel-go's aliased paths size the key as a value (64, not 32)
        ("optional.of(1) == optional.none()", 3),
        (f'{A}.all(a, {A}.all(b, {A}.all(c, a + b + c != "" && a != c)))', 957668),  # just under the limit
    ],
)
def test_estimates_are_kubernetes_numbers(expression: str, cost: int) -> None:
    assert estimate_cost(expression) == cost
    assert compile_expression(expression).cost_estimate == cost


def test_accepted_just_under_the_limit() -> None:
    program = compile_expression(f'{A}.all(a, {A}.all(b, {A}.all(c, a + b + c != "" && a != c)))')
    assert program.cost_estimate <= COST_LIMIT


def test_estimate_cost_reports_other_errors_as_diagnostics() -> None:
    with pytest.raises(DiagnosticError) as info:
        estimate_cost("device.nosuch == 1")
    assert info.value.diagnostics[0].code == "cel_undeclared_reference"
    with pytest.raises(ValueError, match="unknown CEL environment"):
        estimate_cost("true", "nosuch")


def test_admission_maps_have_assumed_bounds() -> None:
    """Kubernetes does not bound label maps; gpupolicy assumes 64 entries, so loops over labels compile."""
    cost = estimate_cost("claim.labels.all(a, claim.labels.all(b, a != b))", "admission")
    assert 0 < cost <= COST_LIMIT


def test_arithmetic_saturates_like_uint64() -> None:
    assert cm.add((1, cm.UINT64_MAX), (1, 1)) == (2, cm.UINT64_MAX)
    assert cm.mul((2, 1 << 40), (3, 1 << 40)) == (6, cm.UINT64_MAX)
    assert cm.factor((0, cm.UINT64_MAX), 0.1) == (0, 1844674407370955264)  # float64, as Go rounds it
    assert cm.factor((3, 3), 0.1) == (1, 1)  # rounded up


def test_go_paths_share_their_backing_array() -> None:
    base = go_append(go_append(GoPath.of("device"), "attributes"), "@values")  # len 3, cap 4
    keys = go_append(base, "@keys")
    values = go_append(base, "@values")
    assert keys.items() == values.items() == ("device", "attributes", "@values", "@values")
    grown = go_append(values, "x")  # full: a new array
    assert grown.items()[-1] == "x" and values.items()[-1] == "@values"


LIST_EXTENSION = [  # Kubernetes' numbers (cel-go ext lists version 3 estimators), from the test bed's oracle
    ("[1,2,3].sort() == [1,2,3]", 50),
    ("[1,2,2].distinct() == [1,2]", 50),
    ("[[1],[2]].flatten() == [1,2]", 54),
    ("[[1, 2], [3]].flatten(1).size() == 3", 45),
    ("[1,2,3].slice(1, 2) == [2]", 33),
    ("[1,2].reverse() == [2,1]", 34),
    ("lists.range(3) == [0,1,2]", 25),
    ('device.driver.split("/").sort() == ["a"]', 8372),
    ('device.driver.split("/").distinct().size() == 1', 7966),
    ('device.driver.split("/").slice(0, 1).size() == 1', 29),
    ("lists.range(device.driver.size()).size() > 0", (1 << 64) - 1),
]


@pytest.mark.parametrize(("expression", "cost"), LIST_EXTENSION)
def test_list_extension_estimates(expression: str, cost: int) -> None:
    """The ext.Lists functions (declared since issue 16's missing libraries) cost what Kubernetes says."""
    assert estimate_cost(expression) == cost
