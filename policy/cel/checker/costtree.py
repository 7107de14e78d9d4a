"""The checked tree in cel-go's shape, for the cost estimate (:mod:`.cost`).

cel-go estimates cost on its checked AST, where macros are already expanded into comprehensions (an
accumulator ``@result`` with an initial value, a loop condition, a loop step and a result), ``cel.bind`` is a
comprehension over an empty list, ``x[i]`` is the call ``_[_]`` and ``x.?f`` the call ``_?._``, and every call
carries the ids of the overloads the type checker found (several where an argument is ``dyn``). The estimate
depends on all of that, so :func:`lower` rebuilds our syntax tree, with the static types the checker recorded,
into that shape: the same expansions cel-go's parser and its ``ext`` macros make.
"""

from __future__ import annotations

from collections.abc import Mapping

from gpupolicy.policy.cel import ast
from gpupolicy.policy.cel.checker.costlib import overload_ids
from gpupolicy.policy.cel.checker.costnode import Comp, E
from gpupolicy.policy.cel.core import DYN, StaticType, kind

ACCU = "@result"


def _lit(value: object, t: StaticType) -> E:
    return E("lit", t, value=value)


def _ident(name: str, t: StaticType) -> E:
    return E("ident", t, name=name)


def _call(name: str, t: StaticType, *args: E, ids: tuple[str, ...] = ()) -> E:
    return E("call", t, name=name, args=list(args), overloads=ids or (name,))


class Lowering:
    def __init__(self, types: Mapping[int, StaticType]) -> None:
        self.types = types

    def type_of(self, node: ast.Node) -> StaticType:
        return self.types.get(id(node), DYN)

    def lower(self, node: ast.Node) -> E:
        e = self._lower(node)
        if kind(e.type) == "optional":
            e.type = ("optional_type", _optional_param(e))
        return e

    def _lower(self, node: ast.Node) -> E:
        t = self.type_of(node)
        if isinstance(node, ast.Literal):
            return _lit(node.value, t)
        if isinstance(node, ast.Ident):
            return _ident(node.name, t)
        if isinstance(node, ast.Select):
            operand = self.lower(node.operand)
            if node.optional:
                return _call("_?._", t, operand, _lit(node.field, "string"), ids=("select_optional_field",))
            return E("select", t, name=node.field, args=[operand], test_only=node.test_only)
        if isinstance(node, ast.Index):
            return self._index(node, t)
        if isinstance(node, ast.Call):
            return self._call(node, t)
        if isinstance(node, ast.ListLit):
            return E("list", t, args=[self.lower(i) for i in node.items])
        if isinstance(node, ast.MapLit):
            return E("map", t, args=[self.lower(part) for entry in node.entries for part in entry])
        if isinstance(node, ast.Comprehension):
            return self._comprehension(node, t)
        if isinstance(node, ast.Bind):
            init = self.lower(node.init)
            rng = E("list", ("list", DYN))
            body = self.lower(node.body)
            never = _lit(False, "bool")
            comp = Comp(rng, "#unused", None, node.var, init, never, _ident(node.var, init.type), body)
            return E("comp", t, comp=comp)
        raise TypeError(f"cannot lower {type(node).__name__}")

    def _index(self, node: ast.Index, t: StaticType) -> E:
        operand, key = self.lower(node.operand), self.lower(node.index)
        k = kind(operand.type)
        if node.optional or k == "optional":
            ids = {"list": ("list_optindex_optional_int",), "map": ("map_optindex_optional_value",)}.get(
                k, ("list_optindex_optional_int", "map_optindex_optional_value")
            )
            return _call("_[?_]" if node.optional else "_[_]", t, operand, key, ids=ids)
        ids = {"list": ("index_list",), "map": ("index_map",)}.get(k, ("index_list", "index_map"))
        return _call("_[_]", t, operand, key, ids=ids)

    def _call(self, node: ast.Call, t: StaticType) -> E:
        target_node, name = node.target, node.name
        if target_node is not None and id(target_node) not in self.types and isinstance(target_node, ast.Ident):
            name, target_node = f"{target_node.name}.{name}", None  # a namespaced function (sets.contains)
        args = [self.lower(a) for a in node.args]
        target = self.lower(target_node) if target_node is not None else None
        types = [a.type for a in ([target] if target is not None else []) + args]
        ids = overload_ids(name, target is not None, types)
        if name in ("_==_", "_!=_"):
            _unify_optionals(args)
        return E("call", t, name=name, args=args, target=target, overloads=ids)

    def _comprehension(self, node: ast.Comprehension, t: StaticType) -> E:
        rng = self.lower(node.range)
        body = self.lower(node.body)
        pred = self.lower(node.predicate) if node.predicate is not None else None
        macro = node.macro
        if macro == "all":
            init, cond = (
                _lit(True, "bool"),
                _call("@not_strictly_false", "bool", accu("bool"), ids=("not_strictly_false",)),
            )
            step, result = _call("_&&_", "bool", accu("bool"), body, ids=("logical_and",)), accu("bool")
        elif macro == "exists":
            negated = _call("!_", "bool", accu("bool"), ids=("logical_not",))
            init, cond = _lit(False, "bool"), _call("@not_strictly_false", "bool", negated, ids=("not_strictly_false",))
            step, result = _call("_||_", "bool", accu("bool"), body, ids=("logical_or",)), accu("bool")
        elif macro in ("exists_one", "existsOne"):
            init, cond = _lit(0, "int"), _lit(True, "bool")
            plus = _call("_+_", "int", accu("int"), _lit(1, "int"), ids=("add_int64",))
            step = _call("_?_:_", "int", body, plus, accu("int"), ids=("conditional",))
            result = _call("_==_", "bool", accu("int"), _lit(1, "int"), ids=("equals",))
        elif macro in ("map", "transformList", "filter"):
            item = body if macro != "filter" else _ident(node.var, _elem(rng.type))
            at: StaticType = ("list", item.type)
            init, cond = E("list", at), _lit(True, "bool")
            step = _call("_+_", at, accu(at), E("list", at, args=[item]), ids=("add_list",))
            test = body if macro == "filter" else pred
            if test is not None:
                step = _call("_?_:_", at, test, step, accu(at), ids=("conditional",))
            result = accu(at)
        else:  # transformMap, transformMapEntry
            at = t
            init, cond = E("map", at), _lit(True, "bool")
            if macro == "transformMap":
                key = _ident(node.var, _elem(rng.type) if kind(rng.type) == "map" else "int")
                step = _call("cel.@mapInsert", at, accu(at), key, body, ids=("@mapInsert_map_key_value",))
            else:
                step = _call("cel.@mapInsert", at, accu(at), body, ids=("@mapInsert_map_map",))
            if pred is not None:
                step = _call("_?_:_", at, pred, step, accu(at), ids=("conditional",))
            result = accu(at)
        comp = Comp(rng, node.var, node.var2, ACCU, init, cond, step, result)
        return E("comp", t, comp=comp)


def accu(t: StaticType) -> E:
    return _ident(ACCU, t)


def _optional_param(e: E) -> StaticType:
    """The value type of an optional (our checker keeps optionals untyped; cel-go types them, and an optional
    of a scalar has a known size): ``optional.of(x)``, ``m.?f`` / ``m[?k]`` on a map or list, ``o.or(p)``."""
    if e.kind == "select" and e.args:  # o.f on an optional o
        return _param_of(e.args[0].type)
    operand = e.target if e.target is not None else (e.args[0] if e.args else None)
    if operand is None:
        return DYN
    if e.name in ("optional.of", "optional.ofNonZeroValue"):
        return operand.type
    k = kind(operand.type)
    if e.name in ("_?._", "_[?_]", "_[_]") and k in ("map", "list"):
        return operand.type[-1]
    return _param_of(operand.type)


def _param_of(t: StaticType) -> StaticType:
    return t[1] if isinstance(t, tuple) and t[0] == "optional_type" else DYN


def _unify_optionals(args: list[E]) -> None:
    """``_==_(A, A)``: an untyped ``optional.none()`` takes the other side's type, as cel-go's checker substitutes
    type parameters in the end."""
    if len(args) != 2 or not all(kind(a.type) == "optional_type" for a in args):
        return
    a, b = args
    if _param_of(a.type) == DYN:
        a.type = b.type
    elif _param_of(b.type) == DYN:
        b.type = a.type


def _elem(t: StaticType) -> StaticType:
    return t[1] if isinstance(t, tuple) and t[0] in ("list", "map") else DYN


def lower(node: ast.Node, types: Mapping[int, StaticType]) -> E:
    return Lowering(types).lower(node)
