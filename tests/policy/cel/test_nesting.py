"""Deeply nested CEL: every form of nesting, as deep as 10 KiB allows, is a located diagnostic.

lark's LALR parser keeps its own stack, so parsing never recurses; the syntax tree is converted with
a depth limit (100) and long ``&&``/``||`` chains are balanced. Each expression runs in a child with a
memory cap and a time limit, so a RecursionError, a segfault or a blow-up fails here.
"""

from __future__ import annotations

import json

import pytest

from gpupolicy.policy.cel import EXPRESSION_MAX_BYTES
from tests.bounded import python

COMPILE = """
import json, sys
from gpupolicy.policy.cel import compile_expression
from gpupolicy.policy.errors import DiagnosticError, Location
try:
    compile_expression(sys.argv[1], Location("class.yaml", 6, 21, "spec.selectors[0].cel.expression"))
except DiagnosticError as err:
    (d,) = err.diagnostics
    print(json.dumps({"code": d.code, "message": d.message, "line": d.location.line, "col": d.location.col}))
else:
    print(json.dumps({}))
"""

N = EXPRESSION_MAX_BYTES // 3  # as many levels as fit the length limit

DEEP = {
    # name: (expression, offset of the first node deeper than 100 levels, where it is certain)
    "lists": ("[" * N + "]" * N + " == []", 100),
    "maps": ('{"k": ' * (N // 4) + "1" + "}" * (N // 4) + " == {}", 99 * 6 + 1),  # the key of the 100th
    "calls": ("size(" * (N // 3) + '""' + ")" * (N // 3) + " == 0", 100 * 5),
    "negations": ("-" * N + "1 == 1", 100),
    "not": ("!" * N + "true", 101),
    "selections": ("device" + ".a" * N + " == 1", None),
    "indexes": ("[1]" + "[0]" * (N - 5) + " == 1", None),
    "additions": (" + ".join(["1"] * (EXPRESSION_MAX_BYTES // 4 - 5)) + " == 1", None),
    "ternaries": ("false ? true : " * (N // 5) + "true", 100 * 15),
}


@pytest.mark.parametrize("name", list(DEEP))
def test_deep_nesting_is_a_located_compile_error(name: str) -> None:
    expression, offset = DEEP[name]
    assert len(expression.encode()) <= EXPRESSION_MAX_BYTES, name
    out = python(COMPILE, expression, timeout=60)
    assert out.returncode == 0 and not out.traceback, (name, out.returncode, out.stderr[-2000:])
    result = json.loads(out.stdout)
    assert result.get("code") == "cel_compile_error", (name, result)
    assert "nesting exceeds the limit of 100" in result["message"], (name, result)
    assert result["line"] == 6, (name, result)
    if offset is not None:  # where the 101st level starts
        assert result["col"] == 21 + offset, (name, result)


def test_deep_parentheses_are_not_nesting() -> None:
    """cel-python's grammar makes each ``(`` a pass-through level: they cost no recursion here."""
    expression = "(" * N + "true" + ")" * N
    out = python(COMPILE, expression, timeout=60)
    assert out.returncode == 0 and not out.traceback, out.stderr[-2000:]
    assert json.loads(out.stdout) == {}
