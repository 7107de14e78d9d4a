"""CEL functions that build values are bounded before they build them.

``format`` with a huge precision, ``replace``, ``join``, ``%s`` of a big list, ``strings.quote`` and
bytes concatenation could each be asked for gigabytes by an expression of a few hundred bytes, and
a loop within the cost budget could keep a thousand megabyte strings alive. Each case is evaluated
in a child process with a memory cap and a time limit (:mod:`tests.bounded`), so a regression fails
here instead of eating the machine.
"""

from __future__ import annotations

import json

import pytest

from gpupolicy.policy.cel import CelRuntimeError, compile_expression
from gpupolicy.policy.device import DeviceView
from tests.bounded import python

EVALUATE = """
import json, sys
from gpupolicy.policy.cel import CelRuntimeError, compile_expression
from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.errors import DiagnosticError, Location
try:
    program = compile_expression(sys.argv[1], Location("class.yaml", 4, 19), env="selector")
except DiagnosticError as err:
    (d,) = err.diagnostics
    print(json.dumps({"phase": "compile", "code": d.code, "message": d.message, "col": d.location.col}))
    raise SystemExit(0)
try:
    value = program.evaluate(DeviceView("gpu.nvidia.com", {}, {}))
except CelRuntimeError as err:
    print(json.dumps({"phase": "run", "code": err.code, "message": err.message}))
else:
    print(json.dumps({"phase": "run", "value": value}))
"""

A = '"0123456789012345678901234567890"'  # 31 characters
B = f'{A}.replace("", {A})'  # 1,023 characters
C = 'b.replace("", b)'  # 1,048,575 characters: one short of the 1 MiB limit
H = "c.substring(0, 524287)"  # half of it


def _with_big(body: str) -> str:
    """``body`` with ``b`` (1 KiB), ``c`` (1 MiB - 1) and ``h`` (512 KiB - 1) bound, ``n`` a list of 1,023 items."""
    return f'cel.bind(b, {B}, cel.bind(c, {C}, cel.bind(h, {H}, cel.bind(n, b.split(""), {body}))))'


def _evaluate(expression: str) -> dict[str, object]:
    out = python(EVALUATE, expression, timeout=60)
    assert out.returncode == 0, f"killed or crashed (rc {out.returncode}): {out.stderr[-2000:]}"
    assert not out.traceback, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert isinstance(result, dict)
    return result


TOO_LONG = "string result longer than 1048576 characters"

RUNTIME_LIMITS = {
    "replace empty old": (_with_big('c.replace("", c).size() > 0'), TOO_LONG),
    "replace": (_with_big('c.replace("0", c).size() > 0'), TOO_LONG),
    "format %s of a list": (_with_big('"%s".format([n.map(x, c)]).size() > 0'), TOO_LONG),
    "format %x": (_with_big('"%x".format([c]).size() > 0'), TOO_LONG),
    "strings.quote": (_with_big("strings.quote(c).size() > 0"), TOO_LONG),
    "format precision at run time": (
        'cel.bind(t, "%.999999999f", t.format([1.0]) == "")',
        "precision 999999999 is larger than 1000000",
    ),
}


@pytest.mark.parametrize("name", list(RUNTIME_LIMITS))
def test_a_huge_result_is_refused_before_it_is_built(name: str) -> None:
    expression, message = RUNTIME_LIMITS[name]
    result = _evaluate(expression)
    assert result.get("code") == "cel_runtime_error", (name, result)
    assert message in str(result["message"]), (name, result)


LOOPS = {
    "format in a loop": _with_big('n.map(x, "%s%s".format([h, h])).size() > 0'),
    "join in a loop": _with_big("n.map(x, [h, h].join()).size() > 0"),
    "format %s in a loop": _with_big('n.map(x, "%s".format([[h]])).size() > 0'),
    "string concatenation in a loop": _with_big("n.map(x, x + c).size() > 0"),
    "list concatenation in a loop": _with_big('cel.bind(l, c.split(""), n.map(x, [x] + l).size() > 0)'),
}


# The API server's estimate already refuses these (cel-go cannot bound the size of a joined list's elements, and
# doubling a megabyte costs more than the limit): refused when compiled, located at the expression.
STATIC_LIMITS = {
    "join with separator": _with_big("n.map(x, c).join(c).size() > 0"),
    "join": _with_big("n.map(x, c).join().size() > 0"),
    "join of literals": _with_big('[c, "x"].join().size() == 1048576'),
    "bytes concatenation": _with_big("cel.bind(y, bytes(c), (y + y).size() > 0)"),
}


@pytest.mark.parametrize("name", list(STATIC_LIMITS))
def test_the_cost_estimate_refuses_what_kubernetes_refuses(name: str) -> None:
    result = _evaluate(STATIC_LIMITS[name])
    assert (result["phase"], result["code"], result["col"]) == ("compile", "cel_cost_exceeded", 19), (name, result)


@pytest.mark.parametrize("name", list(LOOPS))
def test_building_big_strings_in_a_loop_spends_the_cost_budget(name: str) -> None:
    """A thousand calls or concatenations that each build a megabyte cost what they build (Kubernetes
    charges ``join`` by its result), so the budget stops the loop long before the memory does."""
    result = _evaluate(LOOPS[name])
    assert result.get("code") == "cel_cost_exceeded", (name, result)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("%.99999999999f", "precision 99999999999 is larger than 1000000"),
        ("%.999999999e", "precision 999999999 is larger than 1000000"),
        ("%." + "9" * 5000 + "f", "is larger than 1000000"),
    ],
    ids=["11 digits", "scientific", "5000 digits"],
)
def test_a_literal_format_with_a_huge_precision_is_a_located_compile_error(template: str, message: str) -> None:
    result = _evaluate(f'"{template}".format([1.0]) == ""')
    assert result["phase"] == "compile", result
    assert result["code"] == "cel_compile_error"
    assert message in str(result["message"])
    assert result["col"] == 19 + len(f'"{template}".format')  # at the call's "(", as cel-go reports


MAX_PRECISION = 1_000_000  # Go's fmt refuses wider precisions


def test_the_largest_precision_works() -> None:
    program = compile_expression(f'"%.{MAX_PRECISION}f".format([1.5]).size() == {MAX_PRECISION + 2}')
    assert program.evaluate(DeviceView("d", {}, {})) is True


def test_results_up_to_the_limit_still_work() -> None:
    device = DeviceView("d", {}, {})
    assert compile_expression(_with_big("c.size() == 1048575")).evaluate(device) is True
    assert compile_expression(_with_big('c.replace("0", "").size() == 913275')).evaluate(device) is True
    assert compile_expression('strings.quote("a\\"b\\n") == "\\"a\\\\\\"b\\\\n\\""').evaluate(device) is True
    assert compile_expression('"%s|%x|%.2f".format([["a", 1], "hi", 2.5]) == "[\\"a\\", 1]|6869|2.50"').evaluate(device)


def test_split_refuses_a_list_past_the_limit_before_building_it() -> None:
    """A device's string may be longer than the strings CEL builds; its pieces are counted first."""
    device = DeviceView("d", {"d": {"s": "x" * 1_500_000}}, {})
    with pytest.raises(CelRuntimeError, match="list result longer than 1048576 elements"):
        compile_expression('device.attributes["d"].s.split("").size() > 0').evaluate(device)
    assert compile_expression('device.attributes["d"].s.split("", 3).size() == 3').evaluate(device) is True
