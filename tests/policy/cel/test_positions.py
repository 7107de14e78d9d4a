"""Compile errors point where cel-go points (its ``<input>:1:COL``, measured with the test bed's oracle).

cel-go puts an operator call at its operator token, a ternary at its ``?``, an index at its ``[``, a selection at
its ``.``, a call at its ``(``, a ``has()`` test at the ``(`` of ``has``, and a missing end just past the text.
"""

from __future__ import annotations

import pytest

from gpupolicy.policy.cel import compile_expression
from gpupolicy.policy.errors import DiagnosticError, Location

# expression: the column cel-go reports (1-based, on the first line)
CEL_GO_COLUMNS = {
    'true ? 1 : "a"': 6,
    '(true ? 1 : "a") == 1': 7,
    'device.driver == "x" ? 1 : "a"': 22,
    "1 ? 2 : 3": 3,
    '[1, 2]["a"] == 1': 7,
    '{"a": 1}[1] == 1': 9,
    'device.driver[0] == "a"': 14,
    '{"a": 1}["a"]["b"] == 1': 14,
    '1 + "a" == 2': 3,
    "1u + 1 == 2": 4,
    '1 == "a"': 3,
    '1 < "a"': 3,
    '1 in "abc"': 3,
    "device.driver == 1": 15,
    "  device.driver  ==   1": 18,
    'device.capacity["a"].b > 5': 24,
    "device.nosuch == 1": 7,
    "has(device.nosuch)": 4,
    "device.driver.?x.hasValue()": 14,
    "device.driver.nosuch() == 1": 21,
    "nosuch(1) == 1": 7,
    "size(1) == 1": 5,
    '"a".size(1) == 1': 9,
    "device.driver.startsWith(1)": 25,
    'quantity("1").sign() == 1': 19,
    'device.attributes["a"].b.c.d == 1 && 1 + true': 40,
    '[1].all(x, x + "a")': 14,
    '[1].map(x, x).size() == "a"': 22,
    'cel.bind(x, 1, x + "a") == 1': 18,
    '[1, "a"].size() == 2': 5,
    '"abc".matches("[")': 15,
    '"%f".format([1]) == ""': 14,
    '"%s %s".format([1]) == ""': 15,
    '"%s".format([1, 2]) == ""': 12,
    "-!true": 2,
    "1 +": 4,
    "(1": 3,
    'device.driver == "a" &&': 24,
}


@pytest.mark.parametrize("expression", list(CEL_GO_COLUMNS))
def test_compile_errors_are_located_as_cel_go_locates_them(expression: str) -> None:
    with pytest.raises(DiagnosticError) as info:
        compile_expression(expression, Location("class.yaml", 1, 1))
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.location.col == CEL_GO_COLUMNS[expression], diagnostic


def test_an_operator_after_a_comment_and_a_line_break_is_found() -> None:
    with pytest.raises(DiagnosticError) as info:
        compile_expression("device.driver // the driver\n  == 1", Location("class.yaml", 4, 9))
    (diagnostic,) = info.value.diagnostics
    assert (diagnostic.location.line, diagnostic.location.col) == (5, 3)
