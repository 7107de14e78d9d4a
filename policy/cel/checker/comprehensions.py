"""The comprehension macros, with one variable or with two.

One variable: ``all``, ``exists``, ``exists_one``, ``map`` (with an optional filter) and ``filter``
bind each list element or map key in turn. Two variables (cel-go ``ext.TwoVarComprehensions``, in
Kubernetes since 1.32): ``list.all(i, v, p)`` binds the index and the element, ``map.all(k, v, p)``
the key and the value; also ``exists``, ``existsOne``, ``transformList(i, v, [filter,] expr)``,
``transformMap(k, v, [filter,] expr)`` and ``transformMapEntry(k, v, [filter,] mapExpr)``.

Each step costs one unit on the meter, so nested comprehensions over big lists are stopped by the
run-time budget; the static estimate (:mod:`.cost`, the API server's) refuses the obvious ones at
compile time. ``all`` and ``exists`` absorb an error when another step decides the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from gpupolicy.policy.cel.ast import Comprehension
from gpupolicy.policy.cel.core import (
    ANY,
    DYN,
    Checker,
    CompileIssue,
    EvalError,
    Fn,
    Meter,
    StaticType,
    Typed,
    Vars,
    kind,
)
from gpupolicy.policy.cel.runtime.values import map_lookup, runtime_type

_PREDICATES = frozenset({"all", "exists", "exists_one", "existsOne", "filter"})  # the body must be bool
_MISSING = object()

Loop = Callable[[Sequence[Any], Vars, Meter], object]


def compile_comprehension(compiler: Checker, node: Comprehension) -> Typed:
    rng = compiler.compile(node.range)
    if rng.type == ANY:  # an attribute value: cel-go's `any` is not `dyn`, so it cannot be a range
        raise CompileIssue(
            "cel_type_error",
            "expression of type 'any' cannot be range of a comprehension (must be list, map, or dynamic)",
            node.pos,
        )
    if kind(rng.type) not in ("list", "map", "dyn"):
        raise CompileIssue(
            "cel_type_error", f"expression of type '{kind(rng.type)}' cannot be range of a comprehension", node.pos
        )
    names = _names(node)
    types = _variable_types(rng.type, len(names))
    bindings = list(zip(names, types))
    body = compiler.with_vars(bindings, node.body)
    pred = compiler.with_vars(bindings, node.predicate) if node.predicate is not None else None
    _check(node, body, pred)
    result = _result(node, types, body)
    return Typed(_runner(node, rng.fn, body.fn, pred.fn if pred else None), result)


def _names(node: Comprehension) -> tuple[str, ...]:
    return (node.var,) if node.var2 is None else (node.var, node.var2)


def _variable_types(t: StaticType, count: int) -> tuple[StaticType, ...]:
    """One variable: the list element or the map key. Two: the index and the element, or the key and the value."""
    k = kind(t)
    if k == "list":
        return (t[1],) if count == 1 else ("int", t[1])
    if k == "map":
        return (t[1],) if count == 1 else (t[1], t[2])
    return (DYN,) * count


def _check(node: Comprehension, body: Typed, pred: Typed | None) -> None:
    if pred is not None:
        _require_bool(node.macro, "filter", pred, node.pos)
    if node.macro in _PREDICATES:
        _require_bool(node.macro, "predicate", body, node.pos)
    if node.macro == "transformMapEntry" and kind(body.type) not in ("map", "dyn"):
        raise CompileIssue(
            "cel_type_error", f"transformMapEntry() expression must be a map, not {kind(body.type)}", node.pos
        )


def _require_bool(macro: str, what: str, part: Typed, pos: int) -> None:
    if kind(part.type) not in ("bool", "dyn"):
        raise CompileIssue("cel_type_error", f"{macro}() {what} must be bool, not {kind(part.type)}", pos)


def _result(node: Comprehension, types: tuple[StaticType, ...], body: Typed) -> StaticType:
    """The static type of the macro's value."""
    macro = node.macro
    if macro in ("map", "transformList"):
        return ("list", body.type)
    if macro == "filter":
        return ("list", types[0])
    if macro == "transformMap":
        return ("map", types[0], body.type)
    if macro == "transformMapEntry":
        return body.type
    return "bool"  # all, exists, exists_one, existsOne


# --- run time ---------------------------------------------------------------------------


def _runner(node: Comprehension, rng: Fn, body: Fn, pred: Fn | None) -> Fn:
    """Evaluate the range, run the macro's loop over its steps, and restore the variables it bound."""
    names = _names(node)
    count = len(names)
    loop = _loop(node.macro, names, body, pred)

    def run(v: Vars, m: Meter) -> object:
        steps = _steps(rng(v, m), count)
        saved = [v.get(name, _MISSING) for name in names]
        try:
            return loop(steps, v, m)
        finally:
            for name, old in zip(names, saved):
                if old is _MISSING:
                    v.pop(name, None)
                else:
                    v[name] = old

    return run


def _steps(value: object, count: int) -> Sequence[Any]:
    """List elements or map keys for one variable; (index, element) or (key, value) pairs for two."""
    if isinstance(value, (list, tuple)):
        return value if count == 1 else list(enumerate(value))
    if isinstance(value, Mapping):
        return list(value.keys()) if count == 1 else list(value.items())
    raise EvalError(f"expression of type '{runtime_type(value)}' cannot be range of a comprehension")


def _loop(macro: str, names: tuple[str, ...], body: Fn, pred: Fn | None) -> Loop:
    """What the macro does with the steps of its range."""
    var, var2 = names[0], names[-1]
    two = len(names) == 2

    def each(steps: Sequence[Any], v: Vars, m: Meter, test: Fn | None = pred) -> Iterator[Any]:
        """The steps that pass ``test``, each charged one unit and bound to the variables."""
        for step in steps:
            m.charge(1)
            if two:
                v[var], v[var2] = step
            else:
                v[var] = step
            if test is None or _bool(test(v, m), macro):
                yield step

    if macro in ("all", "exists"):
        decisive = macro == "exists"  # the value that decides the result on its own

        def quantify(steps: Sequence[Any], v: Vars, m: Meter) -> object:
            err: EvalError | None = None
            for _ in each(steps, v, m):
                try:
                    if _bool(body(v, m), macro) is decisive:
                        return decisive
                except EvalError as e:
                    err = err or e
            if err is not None:
                raise err
            return not decisive

        return quantify
    if macro in ("exists_one", "existsOne"):
        return lambda steps, v, m: sum(_bool(body(v, m), macro) for _ in each(steps, v, m)) == 1
    if macro in ("map", "transformList"):
        return lambda steps, v, m: [body(v, m) for _ in each(steps, v, m)]
    if macro == "filter":
        return lambda steps, v, m: list(each(steps, v, m, body))
    if macro == "transformMap":
        return lambda steps, v, m: {key: body(v, m) for key, _ in each(steps, v, m)}

    def merge(steps: Sequence[Any], v: Vars, m: Meter) -> object:  # transformMapEntry
        entries: dict[object, object] = {}
        for _ in each(steps, v, m):
            part = body(v, m)
            if not isinstance(part, Mapping):
                raise EvalError(f"transformMapEntry() expression returned {runtime_type(part)}, not a map")
            for key, value in part.items():
                if map_lookup(entries, key)[0]:
                    raise EvalError(f"insert failed: key {key} already exists")
                entries[key] = value
        return entries

    return merge


def _bool(value: object, macro: str) -> bool:
    if isinstance(value, bool):
        return value
    raise EvalError(f"{macro}() predicate returned {runtime_type(value)}, not bool")
