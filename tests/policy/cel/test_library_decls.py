"""The quantity and semver libraries declare exactly the overloads Kubernetes declares, member or global.

Transcribed from k8s.io/apiserver v0.37.2: ``pkg/cel/library/quantity.go`` (``quantityLibraryDecls``)
and ``pkg/cel/library/semverlib.go`` (``semver`` and ``isSemver`` also take a bool, the normalize flag,
in the version the DRA environment uses). ``cel.Overload`` is a global function, ``cel.MemberOverload`` a
receiver call; a form Kubernetes does not declare does not compile there (``q.sign()`` is an
undeclared reference), so it must not compile here either.
"""

from __future__ import annotations

import pytest

from gpupolicy.policy.cel import compile_expression
from gpupolicy.policy.cel.lib.functions import GLOBAL, MEMBER
from gpupolicy.policy.errors import DiagnosticError

Q, S, STR, INT, BOOL, DBL = "quantity", "semver", "string", "int", "bool", "double"

# function -> (global overloads, member overloads), each a set of parameter types (receiver first).
KUBERNETES: dict[str, tuple[set[tuple[str, ...]], set[tuple[str, ...]]]] = {
    # quantity.go
    "quantity": ({(STR,)}, set()),
    "isQuantity": ({(STR,)}, set()),
    "sign": ({(Q,)}, set()),
    "isGreaterThan": (set(), {(Q, Q), (S, S)}),
    "isLessThan": (set(), {(Q, Q), (S, S)}),
    "compareTo": (set(), {(Q, Q), (S, S)}),
    "asApproximateFloat": (set(), {(Q,)}),
    "asInteger": (set(), {(Q,)}),
    "isInteger": (set(), {(Q,)}),
    "add": (set(), {(Q, Q), (Q, INT)}),
    "sub": (set(), {(Q, Q), (Q, INT)}),
    # semverlib.go
    "semver": ({(STR,), (STR, BOOL)}, set()),
    "isSemver": ({(STR,), (STR, BOOL)}, set()),
    "major": (set(), {(S,)}),
    "minor": (set(), {(S,)}),
    "patch": (set(), {(S,)}),
}


@pytest.mark.parametrize("name", sorted(KUBERNETES))
def test_declared_forms(name: str) -> None:
    global_forms, member_forms = KUBERNETES[name]
    assert {o.params for o in GLOBAL.get(name, [])} == global_forms
    assert {o.params for o in MEMBER.get(name, [])} == member_forms


# One call of each function in each form, on values of the declared types.
ARGS = {Q: 'quantity("1")', S: 'semver("1.0.0")', STR: '"1"', INT: "1", BOOL: "true"}
CALLS = [(name, params) for name, (g, m) in sorted(KUBERNETES.items()) for params in sorted(g | m)]


def _compiles(expression: str) -> bool:
    try:
        compile_expression(f"{expression} == {expression}")
    except DiagnosticError:
        return False
    return True


@pytest.mark.parametrize(("name", "params"), CALLS, ids=[f"{n}{p}" for n, p in CALLS])
def test_only_the_declared_form_compiles(name: str, params: tuple[str, ...]) -> None:
    global_forms, member_forms = KUBERNETES[name]
    args = ['"1.0.0"' if p == STR and name in ("semver", "isSemver") else ARGS[p] for p in params]
    as_global = f"{name}({', '.join(args)})"
    as_member = f"{args[0]}.{name}({', '.join(args[1:])})"
    assert _compiles(as_global) is (params in global_forms), as_global
    assert _compiles(as_member) is (params in member_forms), as_member


def test_sign_is_only_global() -> None:
    assert _compiles('sign(quantity("-1"))')
    with pytest.raises(DiagnosticError) as info:
        compile_expression('quantity("-1").sign() == -1')
    assert [d.code for d in info.value.diagnostics] == ["cel_undeclared_reference"]
