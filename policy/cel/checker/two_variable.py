"""Two-variable comprehensions (cel-go ``ext.TwoVarComprehensions``, in Kubernetes since 1.32).

``list.all(i, v, p)`` binds the index and the element, ``map.all(k, v, p)`` the key and the value;
also ``exists``, ``existsOne``, ``transformList(i, v, [filter,] expr)``,
``transformMap(k, v, [filter,] expr)`` and ``transformMapEntry(k, v, [filter,] mapExpr)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gpupolicy.policy.cel.ast import Comprehension
from gpupolicy.policy.cel.core import DYN, Checker, CompileIssue, EvalError, Fn, Meter, StaticType, Typed, Vars, kind
from gpupolicy.policy.cel.runtime.values import map_lookup, runtime_type

_MISSING = object()


def _pairs(value: object) -> Iterable[tuple[object, object]]:
    if isinstance(value, (list, tuple)):
        return list(enumerate(value))
    if isinstance(value, Mapping):
        return list(value.items())
    raise EvalError(f"expression of type '{runtime_type(value)}' cannot be range of a comprehension")


def _var_types(t: StaticType) -> tuple[StaticType, StaticType]:
    if kind(t) == "list":
        return "int", t[1]
    if kind(t) == "map":
        return t[1], t[2]
    return DYN, DYN


def compile_two_var(compiler: Checker, node: Comprehension) -> Typed:
    assert node.var2 is not None
    rng = compiler.compile(node.range)
    if kind(rng.type) not in ("list", "map", "dyn"):
        raise CompileIssue(
            "cel_type_error", f"expression of type '{kind(rng.type)}' cannot be range of a comprehension", node.pos
        )
    t1, t2 = _var_types(rng.type)
    bindings = [(node.var, t1, 64), (node.var2, t2, 64)]
    body = compiler.with_vars(bindings, node.body)
    pred = compiler.with_vars(bindings, node.predicate) if node.predicate is not None else None
    for part, what in ((pred, "filter"), (body if node.macro in ("all", "exists", "existsOne") else None, "predicate")):
        if part is not None and kind(part.type) not in ("bool", "dyn"):
            raise CompileIssue("cel_type_error", f"{node.macro}() {what} must be bool, not {kind(part.type)}", node.pos)
    if node.macro == "transformMapEntry" and kind(body.type) not in ("map", "dyn"):
        raise CompileIssue(
            "cel_type_error", f"transformMapEntry() expression must be a map, not {kind(body.type)}", node.pos
        )
    cost = rng.cost + rng.size * (body.cost + (pred.cost if pred else 0) + 1) + 1
    run = _runner(node.macro, node.var, node.var2, rng.fn, body.fn, pred.fn if pred else None)
    result: StaticType = "bool"
    if node.macro == "transformList":
        result = ("list", body.type)
    elif node.macro == "transformMap":
        result = ("map", t1, body.type)
    elif node.macro == "transformMapEntry":
        result = body.type
    return Typed(run, result, cost, rng.size)


def _runner(macro: str, var: str, var2: str, rng: Fn, body: Fn, pred: Fn | None) -> Fn:
    def run(v: Vars, m: Meter) -> object:
        pairs = _pairs(rng(v, m))
        saved = (v.get(var, _MISSING), v.get(var2, _MISSING))
        try:
            return _loop(macro, pairs, var, var2, body, pred, v, m)
        finally:
            for name, old in ((var, saved[0]), (var2, saved[1])):
                if old is _MISSING:
                    v.pop(name, None)
                else:
                    v[name] = old

    return run


def _loop(
    macro: str,
    pairs: Iterable[tuple[object, object]],
    var: str,
    var2: str,
    body: Fn,
    pred: Fn | None,
    v: Vars,
    m: Meter,
) -> object:
    err: EvalError | None = None
    count = 0
    items: list[object] = []
    entries: dict[object, object] = {}
    for a, b in pairs:
        m.charge(1)
        v[var], v[var2] = a, b
        if macro in ("all", "exists"):
            try:
                value = _bool(body(v, m), macro)
            except EvalError as e:
                err = err or e
                continue
            if value is (macro == "exists"):
                return value
            continue
        if macro == "existsOne":
            count += _bool(body(v, m), macro)
            continue
        if pred is not None and not _bool(pred(v, m), macro):
            continue
        if macro == "transformList":
            items.append(body(v, m))
        elif macro == "transformMap":
            entries[a] = body(v, m)
        else:
            _merge(entries, body(v, m))
    if macro in ("all", "exists"):
        if err is not None:
            raise err
        return macro == "all"
    if macro == "existsOne":
        return count == 1
    return items if macro == "transformList" else entries


def _bool(value: object, macro: str) -> bool:
    if isinstance(value, bool):
        return value
    raise EvalError(f"{macro}() predicate returned {runtime_type(value)}, not bool")


def _merge(entries: dict[object, object], part: object) -> None:
    if not isinstance(part, Mapping):
        raise EvalError(f"transformMapEntry() expression returned {runtime_type(part)}, not a map")
    for key, value in part.items():
        if map_lookup(entries, key)[0]:
            raise EvalError(f"insert failed: key {key} already exists")
        entries[key] = value
