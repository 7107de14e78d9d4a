"""The comprehension macros: ``all``, ``exists``, ``exists_one``, ``map`` and ``filter``.

They iterate over list elements or map keys. Each step costs one unit on the meter, so nested
comprehensions over big lists are stopped by the run-time budget, and the static estimate
(range size x body cost) refuses the obvious ones at compile time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from gpupolicy.policy.cel.ast import Comprehension
from gpupolicy.policy.cel.checker.two_variable import compile_two_var
from gpupolicy.policy.cel.core import DYN, Checker, CompileIssue, EvalError, Fn, Meter, StaticType, Typed, Vars, kind
from gpupolicy.policy.cel.runtime.values import runtime_type

_MISSING = object()


def _items(value: object) -> Iterable[object]:
    if isinstance(value, (list, tuple)):
        return value
    if isinstance(value, Mapping):
        return list(value.keys())
    raise EvalError(f"expression of type '{runtime_type(value)}' cannot be range of a comprehension")


def _elem_type(t: StaticType) -> StaticType:
    k = kind(t)
    if k == "list":
        return t[1]
    if k == "map":
        return t[1]
    return DYN


def compile_comprehension(compiler: Checker, node: Comprehension) -> Typed:
    if node.var2 is not None:
        return compile_two_var(compiler, node)
    rng = compiler.compile(node.range)
    if kind(rng.type) not in ("list", "map", "dyn"):
        raise CompileIssue(
            "cel_type_error", f"expression of type '{kind(rng.type)}' cannot be range of a comprehension", node.pos
        )
    elem = _elem_type(rng.type)
    body = compiler.with_vars([(node.var, elem, 64)], node.body)
    pred = compiler.with_vars([(node.var, elem, 64)], node.predicate) if node.predicate is not None else None
    per_step = body.cost + (pred.cost if pred else 0) + 1
    cost = rng.cost + rng.size * per_step + 1
    if node.macro in ("all", "exists", "exists_one", "filter"):
        test = pred if node.macro == "filter" and pred is not None else body
        if kind(test.type) not in ("bool", "dyn"):
            raise CompileIssue(
                "cel_type_error", f"{node.macro}() predicate must be bool, not {kind(test.type)}", node.pos
            )
    if pred is not None and kind(pred.type) not in ("bool", "dyn"):
        raise CompileIssue("cel_type_error", f"map() filter must be bool, not {kind(pred.type)}", node.pos)
    runner = _RUNNERS[node.macro](node.var, rng.fn, body.fn, pred.fn if pred else None)
    if node.macro == "map":
        return Typed(runner, ("list", body.type), cost, rng.size)
    if node.macro == "filter":
        return Typed(runner, ("list", elem), cost, rng.size)
    return Typed(runner, "bool", cost, 1)


def _bool(value: object, macro: str) -> bool:
    if isinstance(value, bool):
        return value
    raise EvalError(f"{macro}() predicate returned {runtime_type(value)}, not bool")


def _quantifier(decisive: bool, macro: str) -> Callable[[str, Fn, Fn, Fn | None], Fn]:
    def make(var: str, rng: Fn, body: Fn, _pred: Fn | None) -> Fn:
        def run(v: Vars, m: Meter) -> object:
            items = _items(rng(v, m))
            saved = v.get(var, _MISSING)
            err: EvalError | None = None
            try:
                for item in items:
                    m.charge(1)
                    v[var] = item
                    try:
                        if _bool(body(v, m), macro) is decisive:
                            return decisive
                    except EvalError as e:
                        err = err or e
            finally:
                _restore(v, var, saved)
            if err is not None:
                raise err
            return not decisive

        return run

    return make


def _exists_one(var: str, rng: Fn, body: Fn, _pred: Fn | None) -> Fn:
    def run(v: Vars, m: Meter) -> object:
        items = _items(rng(v, m))
        saved, count = v.get(var, _MISSING), 0
        try:
            for item in items:
                m.charge(1)
                v[var] = item
                count += _bool(body(v, m), "exists_one")
        finally:
            _restore(v, var, saved)
        return count == 1

    return run


def _map(var: str, rng: Fn, body: Fn, pred: Fn | None) -> Fn:
    def run(v: Vars, m: Meter) -> object:
        items = _items(rng(v, m))
        saved, out = v.get(var, _MISSING), []
        try:
            for item in items:
                m.charge(1)
                v[var] = item
                if pred is None or _bool(pred(v, m), "map"):
                    out.append(body(v, m))
        finally:
            _restore(v, var, saved)
        return out

    return run


def _filter(var: str, rng: Fn, body: Fn, pred: Fn | None) -> Fn:
    test = pred if pred is not None else body

    def run(v: Vars, m: Meter) -> object:
        items = _items(rng(v, m))
        saved, out = v.get(var, _MISSING), []
        try:
            for item in items:
                m.charge(1)
                v[var] = item
                if _bool(test(v, m), "filter"):
                    out.append(item)
        finally:
            _restore(v, var, saved)
        return out

    return run


def _restore(v: Vars, var: str, saved: object) -> None:
    if saved is _MISSING:
        v.pop(var, None)
    else:
        v[var] = saved


_RUNNERS: dict[str, Callable[[str, Fn, Fn, Fn | None], Fn]] = {
    "all": _quantifier(False, "all"),
    "exists": _quantifier(True, "exists"),
    "exists_one": _exists_one,
    "map": _map,
    "filter": _filter,
}
