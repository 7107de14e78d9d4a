"""Deeply nested CEL: cel-go's limits exactly (what Kubernetes compiles compiles, one level more is refused).

cel-go refuses an expression whose ANTLR rules nest more than 250 deep while parsing ("expression recursion limit
exceeded: 250") or whose syntax tree nests more than 250 operations, selections, method calls and indexes while
it is built ("max recursion depth exceeded"); ``!``, ``-`` and ``&&`` runs cost nothing. The thresholds below were
measured with the test bed's oracle (Kubernetes' own DeviceClass validation; tests/e2e/test_cel_differential.py
checks the nearest of them against it). Each expression runs in a child with a memory cap and a time limit, so a
RecursionError, a segfault or a blow-up fails here; evaluation runs in a thread, as the plugin evaluates.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from gpupolicy.policy.cel import EXPRESSION_MAX_BYTES
from tests.bounded import python

COMPILE = """
import json, sys, threading
from gpupolicy.policy.cel import CelRuntimeError, compile_expression
from gpupolicy.policy.errors import DiagnosticError, Location
out = {}
def run():
    try:
        program = compile_expression(sys.argv[1], Location("class.yaml", 6, 21, "spec.selectors[0].cel.expression"))
    except DiagnosticError as err:
        (d,) = err.diagnostics
        out.update(code=d.code, message=d.message, line=d.location.line, col=d.location.col)
    else:
        try:
            out["value"] = program.evaluate()
        except CelRuntimeError as err:
            out["error"] = err.code
thread = threading.Thread(target=run)
thread.start()
thread.join()
print(json.dumps(out))
"""

LISTENER = "expression recursion limit exceeded: 250"
VISITOR = "max recursion depth exceeded"

# name: (expression for n levels, the most levels Kubernetes accepts, the message one more level gets)
LIMITS: dict[str, tuple[Callable[[int], str], int, str]] = {
    "lists": (lambda n: "[" * n + "]" * n + " == []", 250, LISTENER),
    "parentheses": (lambda n: "(" * n + "true" + ")" * n, 249, LISTENER),
    "calls": (lambda n: "string(" * n + '"ab"' + ")" * n + ' == "ab"', 249, LISTENER),
    "maps": (lambda n: '{"k": ' * n + "1" + "}" * n + " == {}", 249, LISTENER),
    "ternaries": (lambda n: "false ? true : " * n + "true", 249, LISTENER),
    "ternaries in conditions": (lambda n: "(true ? " * n + "true" + " : false)" * n, 248, LISTENER),
    "right operands": (lambda n: "1 + (" * n + "1" + ")" * n + " > 0", 124, LISTENER),
    "left operands": (lambda n: "(" * n + "1" + " + 1)" * n + " > 0", 248, LISTENER),
    "negations": (lambda n: "!(" * n + "true" + ")" * n, 249, LISTENER),
    "additions": (lambda n: "1" + " + 1" * n + " > 0", 249, VISITOR),
    "comparisons": (lambda n: "true" + " == true" * n, 250, VISITOR),
    "method calls": (lambda n: '"a"' + ".lowerAscii()" * n + ' == "a"', 249, VISITOR),
    "indexes": (lambda n: "dyn([1])" + "[0]" * n + " == 1", 249, VISITOR),
}


def _run(expression: str) -> dict[str, object]:
    assert len(expression.encode()) <= EXPRESSION_MAX_BYTES
    out = python(COMPILE, expression, timeout=60)
    assert out.returncode == 0 and not out.traceback, (out.returncode, out.stderr[-2000:])
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("name", list(LIMITS))
def test_nesting_up_to_kubernetes_limit_compiles_and_runs(name: str) -> None:
    build, most, _ = LIMITS[name]
    result = _run(build(most))
    assert "code" not in result, (name, result)
    assert isinstance(result.get("value"), bool) or result.get("error") == "cel_runtime_error", (name, result)


@pytest.mark.parametrize("name", list(LIMITS))
def test_one_level_more_is_a_located_compile_error(name: str) -> None:
    build, most, message = LIMITS[name]
    expression = build(most + 1)
    result = _run(expression)
    assert result.get("code") == "cel_compile_error", (name, result)
    assert result["message"] == message, (name, result)
    assert result["line"] == 6 and 21 <= int(str(result["col"])) < 21 + len(expression), (name, result)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("!" * (EXPRESSION_MAX_BYTES - 4) + "true", True),  # a run of ! is one operator (or none) in cel-go
        ("!" * (EXPRESSION_MAX_BYTES - 5) + "true", False),
        ("-" * (EXPRESSION_MAX_BYTES - 6) + "1 == 1", True),
        (" && ".join(["true"] * (EXPRESSION_MAX_BYTES // 8)), True),
        ("(" * (EXPRESSION_MAX_BYTES // 3) + "true" + ")" * (EXPRESSION_MAX_BYTES // 3), None),  # refused: 250
    ],
)
def test_runs_that_cost_no_depth(expression: str, value: bool | None) -> None:
    result = _run(expression)
    if value is None:
        assert result.get("message") == LISTENER, result
    else:
        assert result == {"value": value}


def test_worst_mixed_nesting_within_the_limits_runs() -> None:
    """Several kinds of nesting at once: lists, ternaries, && chains and runs of negations."""
    level = "[!!true && !false ? "
    expression = level * 120 + "[]" + " : []]" * 120 + " != []"
    result = _run(expression)
    assert result == {"value": True}, result
