"""The libraries added for issue 16 declare the forms Kubernetes declares, member or global, and no others.

Transcribed from cel-go v0.29.2 (``common/stdlib/standard.go``: the timestamp and duration accessors are member
functions only; ``ext/lists.go`` at version 3: ``lists.range`` is global, the rest member functions;
``cel/library.go``: ``first``, ``last``, ``unwrapOpt`` members, ``optional.unwrap`` global) and k8s.io/apiserver
v0.37.2 (``pkg/cel/library/format.go``: ``format.<name>()`` and ``format.named`` global, ``validate`` member).
"""

from __future__ import annotations

import pytest

from gpupolicy.policy.cel import compile_expression
from gpupolicy.policy.errors import DiagnosticError

TS, DUR, LIST = 'timestamp("2024-01-01T00:00:00Z")', 'duration("1h")', "[3, 1, 2]"

# (receiver or first argument, function, other arguments, declared as member?)
FORMS = [
    *[(TS, f, "", True) for f in ("getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate")],
    *[(TS, f, '"UTC"', True) for f in ("getDayOfWeek", "getHours", "getMinutes", "getSeconds", "getMilliseconds")],
    *[(DUR, f, "", True) for f in ("getHours", "getMinutes", "getSeconds", "getMilliseconds")],
    (LIST, "slice", "0, 1", True),
    (LIST, "sort", "", True),
    (LIST, "reverse", "", True),
    (LIST, "distinct", "", True),
    ("[[1]]", "flatten", "", True),
    (LIST, "flatten", "1", True),
    (LIST, "first", "", True),
    (LIST, "last", "", True),
    ("[optional.of(1)]", "unwrapOpt", "", True),
    ("format.uuid()", "validate", '"x"', True),
]


def _compiles(expression: str) -> bool:
    try:
        compile_expression(f"[{expression}].size() == 1")
    except DiagnosticError:
        return False
    return True


@pytest.mark.parametrize(("first", "name", "rest", "member"), FORMS, ids=[f"{f[1]}({f[2]})" for f in FORMS])
def test_only_the_declared_form_compiles(first: str, name: str, rest: str, member: bool) -> None:
    as_member = f"{first}.{name}({rest})"
    as_global = f"{name}({first}{', ' + rest if rest else ''})"
    assert _compiles(as_member) is member, as_member
    assert _compiles(as_global) is not member, as_global


@pytest.mark.parametrize(
    "expression",
    ["lists.range(3)", "optional.unwrap([optional.of(1)])", "format.dns1123Label()", 'format.named("uuid")'],
)
def test_global_functions(expression: str) -> None:
    assert _compiles(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "(3).range()",
        "[optional.of(1)].unwrap()",
        '"x".named()',
        "duration(1)",
        "timestamp(1.5)",
        "double(duration('1s'))",
    ],
)
def test_undeclared_forms(expression: str) -> None:
    assert not _compiles(expression)
