"""Check and compile a CEL syntax tree into Python closures.

One pass does two things per node: infer a static type (rejecting what Kubernetes' type checker
rejects, such as ``device.driver == 1`` or ``quantity("1") < 2``), recorded per node in
:attr:`Compiler.types` for the API server's cost estimate (:mod:`.cost`, a separate pass that refuses
what could run too long), and build a closure ``fn(vars, meter)`` that evaluates the node.
Closures raise :class:`EvalError` for CEL run-time errors; ``&&``, ``||``, ``all`` and ``exists``
absorb an error when the other side decides.
The :class:`Meter` charges every comprehension step and every size-dependent function call, and
stops the evaluation with :class:`CostExceeded` once the budget is spent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from gpupolicy.policy.cel.ast import Bind, Call, Comprehension, Ident, Index, ListLit, Literal, MapLit, Node, Select
from gpupolicy.policy.cel.checker.calls import compile_call
from gpupolicy.policy.cel.checker.comprehensions import compile_comprehension
from gpupolicy.policy.cel.core import (
    ANY,
    DYN,
    TYPE_NAMES,
    CompileIssue,
    EvalError,
    Fn,
    Meter,
    ObjectFields,
    StaticType,
    Typed,
    Vars,
    assignable,
    join,
    kind,
    no_overload,
    type_name,
    undeclared,
)
from gpupolicy.policy.cel.runtime import ops
from gpupolicy.policy.cel.runtime.values import TypeValue, map_lookup, runtime_type


def literal_type(value: object) -> StaticType:
    name = runtime_type(value)
    return "null_type" if value is None else name


def const(value: object, pos: int = 0) -> Typed:
    return Typed(lambda v, m: value, literal_type(value), const=True)


class Compiler:
    def __init__(self, variables: Mapping[str, StaticType], objects: ObjectFields) -> None:
        self.variables = dict(variables)
        self.objects = objects
        self.scope: dict[str, StaticType] = {}
        self.lazy: set[str] = set()  # the names in scope bound by cel.bind, read through a _Lazy cell
        self.heterogeneous_ok: set[int] = set()  # list literals exempt from homogeneity (format's args)
        self.types: dict[int, StaticType] = {}  # id(node) -> static type, for the cost estimate (checker.cost)

    def compile(self, node: Node) -> Typed:
        typed = self._compile(node)
        self.types[id(node)] = typed.type
        return typed

    def _compile(self, node: Node) -> Typed:
        if isinstance(node, Literal):
            return const(node.value, node.pos)
        if isinstance(node, Ident):
            return self._ident(node)
        if isinstance(node, Select):
            return self._select(node)
        if isinstance(node, Index):
            return self._index(node)
        if isinstance(node, Call):
            return compile_call(self, node)
        if isinstance(node, ListLit):
            return self._list(node)
        if isinstance(node, MapLit):
            return self._map(node)
        if isinstance(node, Comprehension):
            return compile_comprehension(self, node)
        if isinstance(node, Bind):
            return self._bind(node)
        raise CompileIssue("cel_compile_error", f"unsupported expression {type(node).__name__}", node.pos)

    # --- names and fields ---------------------------------------------------------------

    def is_variable(self, name: str) -> bool:
        return name in self.scope or name in self.variables

    def _ident(self, node: Ident) -> Typed:
        name = node.name
        if name in self.scope:
            t = self.scope[name]
            if name in self.lazy:
                return Typed(lambda v, m: _force(v[name]), t)
            return Typed(lambda v, m: v[name], t)
        if name in self.variables:
            return Typed(lambda v, m: v[name], self.variables[name])
        if name in TYPE_NAMES:
            value = TypeValue(name)
            return Typed(lambda v, m: value, "type", const=True)
        raise undeclared(name, node.pos)

    def _select(self, node: Select) -> Typed:
        operand = self.compile(node.operand)
        field, fn = node.field, operand.fn
        k = kind(operand.type)
        if node.optional or k == "optional":
            if k not in ("map", "object", "dyn", "optional") or node.test_only:
                raise CompileIssue(
                    "cel_type_error", f"type '{type_name(operand.type)}' does not support field selection", node.pos
                )
            opt = node.optional
            result = ("optional", operand.type[2] if k == "map" else DYN)
            return Typed(lambda v, m: ops.optional_select(fn(v, m), field, opt), result)
        if k == "object":
            fields = self.objects[str(operand.type[1])]
            if field not in fields:
                raise CompileIssue("cel_undeclared_reference", f"undefined field '{field}'", node.pos)
            result_type: StaticType = fields[field]
        elif k == "map":
            result_type = operand.type[2]
        elif k == "dyn":
            result_type = DYN
        else:
            what = "has() macro" if node.test_only else "field selection"
            raise CompileIssue("cel_type_error", f"type '{type_name(operand.type)}' does not support {what}", node.pos)
        if node.test_only:
            return Typed(lambda v, m: ops.has_field(fn(v, m), field), "bool")
        base, keys = operand.path or (fn, ())
        path = (base, (*keys, field))
        return Typed(_lookup_chain(*path), result_type, path=path)

    def _index(self, node: Index) -> Typed:
        operand, key = self.compile(node.operand), self.compile(node.index)
        k, kk = kind(operand.type), kind(key.type)
        if node.optional or k == "optional":
            if k not in ("map", "list", "dyn", "optional"):
                raise no_overload("_[?_]", node.pos, operand.type, key.type)
            # the key's type as for _[_]: <K, V>(map(K, V), K) and (list(V), int)
            wrong_map_key = k == "map" and not assignable(key.type, operand.type[1])
            if wrong_map_key or (k == "list" and kk not in ("int", "dyn")):
                raise no_overload("_[?_]", node.pos, operand.type, key.type)
            ofn, kfn, opt = operand.fn, key.fn, node.optional
            elem = operand.type[2] if k == "map" else operand.type[1] if k == "list" else DYN
            return Typed(lambda v, m: ops.optional_index(ofn(v, m), kfn(v, m), opt), ("optional", elem))
        if k == "list":
            if kk not in ("int", "uint", "dyn"):
                raise no_overload("_[_]", node.pos, operand.type, key.type)
            result_type: StaticType = operand.type[1]
        elif k == "map":
            if not assignable(key.type, operand.type[1]):  # cel-go: _[_] is <K, V>(map(K, V), K) -> V
                raise no_overload("_[_]", node.pos, operand.type, key.type)
            result_type = operand.type[2]
        elif k == "dyn":
            result_type = DYN
        else:
            raise no_overload("_[_]", node.pos, operand.type, key.type)
        ofn, kfn = operand.fn, key.fn
        if isinstance(node.index, Literal) and isinstance(node.index.value, str) and k != "list":
            base, keys = operand.path or (ofn, ())
            path = (base, (*keys, node.index.value))
            return Typed(_lookup_chain(*path), result_type, path=path)
        return Typed(lambda v, m: ops.index(ofn(v, m), kfn(v, m)), result_type)

    # --- literals -----------------------------------------------------------------------

    def _list(self, node: ListLit) -> Typed:
        items = [self.compile(item) for item in node.items]
        if id(node) in self.heterogeneous_ok:
            elem = DYN
        else:
            elem = _homogeneous([(i.type, n.pos, _explicit_dyn(n)) for i, n in zip(items, node.items)])
        fns = [item.fn for item in items]
        constant = all(item.const for item in items)  # cel-go's OptOptimize builds these when planning
        return Typed(lambda v, m: [f(v, m) for f in fns], ("list", elem), const=constant)

    def _map(self, node: MapLit) -> Typed:
        entries = [(self.compile(k), self.compile(val)) for k, val in node.entries]
        exempt = id(node) in self.heterogeneous_ok
        for (key, _), (knode, _) in zip(entries, node.entries):
            if kind(key.type) not in ("int", "uint", "bool", "string", "dyn"):
                raise CompileIssue("cel_type_error", f"unsupported map key type: {type_name(key.type)}", knode.pos)
        t: StaticType = (
            ("map", DYN, DYN)
            if exempt
            else (
                "map",
                _homogeneous([(k.type, kn.pos, _explicit_dyn(kn)) for (k, _), (kn, _) in zip(entries, node.entries)]),
                _homogeneous([(v.type, vn.pos, _explicit_dyn(vn)) for (_, v), (_, vn) in zip(entries, node.entries)]),
            )
        )
        fns = [(k.fn, val.fn) for k, val in entries]

        def build(v: Vars, m: Meter) -> object:
            out: dict[object, object] = {}
            for kf, vf in fns:
                key = kf(v, m)
                if not isinstance(key, (int, str)):
                    raise EvalError(f"unsupported map key type: {runtime_type(key)}")
                if map_lookup(out, key)[0] and not any(k == key and runtime_type(k) == runtime_type(key) for k in out):
                    # cel-go builds a Go map keyed by the value and its type: a repeated key of the same type
                    # overwrites (the last entry wins); 1 and 1u are two keys there, which one dict cannot hold
                    raise EvalError(f"Failed with repeated key: {key}")
                out[key] = vf(v, m)
            return out

        constant = all(k.const and val.const for k, val in entries)
        return Typed(build, t, const=constant)

    # --- macros ---------------------------------------------------------------------------

    def with_var(self, name: str, t: StaticType, body: Node) -> Typed:
        return self.with_vars([(name, t)], body)

    def with_vars(self, bindings: list[tuple[str, StaticType]], body: Node, lazy: bool = False) -> Typed:
        saved = {name: (self.scope.get(name), name in self.lazy) for name, _ in bindings}
        for name, t in bindings:
            self.scope[name] = t
            (self.lazy.add if lazy else self.lazy.discard)(name)
        try:
            return self.compile(body)
        finally:
            for name, (old, was_lazy) in saved.items():
                if old is None:
                    self.scope.pop(name, None)
                else:
                    self.scope[name] = old
                (self.lazy.add if was_lazy else self.lazy.discard)(name)

    def _bind(self, node: Bind) -> Typed:
        """``cel.bind(var, init, body)``: as in cel-go, ``init`` runs when ``body`` first reads ``var`` (in the scope
        of the ``cel.bind``), at most once; a binding the body never reads is never evaluated, so its errors do
        not count (``cel.bind(x, 1 / 0, true)`` is true)."""
        init = self.compile(node.init)
        body = self.with_vars([(node.var, init.type)], node.body, lazy=True)
        name, ifn, bfn = node.var, init.fn, body.fn
        missing = object()

        def run(v: Vars, m: Meter) -> object:
            saved = v.get(name, missing)
            v[name] = _Lazy(ifn, dict(v), m)
            try:
                return bfn(v, m)
            finally:
                if saved is missing:
                    del v[name]
                else:
                    v[name] = saved

        return replace(body, fn=run, const=False)


class _Lazy:
    """A ``cel.bind`` value not computed yet: the init closure and a copy of the variables it may read."""

    __slots__ = ("done", "error", "fn", "meter", "value", "vars")

    def __init__(self, fn: Fn, variables: Vars, meter: Meter) -> None:
        self.fn, self.vars, self.meter = fn, variables, meter
        self.done = False
        self.value: object = None
        self.error: Exception | None = None


def _force(x: object) -> object:
    if not isinstance(x, _Lazy):
        return x
    if not x.done:
        x.done = True
        try:
            x.value = x.fn(x.vars, x.meter)
        except Exception as exc:  # an evaluation error is the bound value, as in cel-go
            x.error = exc
    if x.error is not None:
        raise x.error
    return x.value


def _homogeneous(types: list[tuple[StaticType, int, bool]]) -> StaticType:
    """Kubernetes enables homogeneous aggregate literals: every element's type must be equivalent to the first's,
    exactly (cel-go's ``IsEquivalentType``): ``[1, "a"]``, ``[dyn(1), "a"]`` and ``["a", <attribute>]`` (an attribute
    value is cel-go's ``any``, not ``string``) are type errors; ``[dyn(1), dyn("a")]`` is fine. The third element
    says the item is a ``dyn(...)`` call, whose type is exactly ``dyn``; elsewhere our ``dyn`` can stand for a type
    cel-go infers and we do not, so it still matches anything but an attribute value."""
    if not types:
        return DYN
    common, _, common_dyn = types[0]
    for t, pos, explicit_dyn in types[1:]:
        same = t == DYN and common == DYN if common_dyn or explicit_dyn else _equivalent(common, t)
        if not same:
            raise CompileIssue("cel_type_error", f"expected type '{type_name(common)}' but found '{type_name(t)}'", pos)
        common = join(common, t)
    return common


def _equivalent(a: StaticType, b: StaticType) -> bool:
    if a == ANY or b == ANY:
        return a == b
    if a == DYN or b == DYN:
        return True
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and a[0] == b[0] and all(map(_equivalent, a[1:], b[1:]))
    return a == b


def _explicit_dyn(node: Node) -> bool:
    return isinstance(node, Call) and node.name == "dyn" and node.target is None and len(node.args) == 1


def _lookup_chain(base: Fn, keys: tuple[str, ...]) -> Fn:
    """One closure for ``base.a["b"].c``: constant string keys looked up in a loop."""

    def run(v: Vars, m: Meter) -> object:
        x = base(v, m)
        for key in keys:
            if isinstance(x, dict):
                try:
                    x = x[key]
                except KeyError:
                    raise EvalError(f"no such key: {key}") from None
            else:
                x = ops.select(x, key)
        return x

    return run
