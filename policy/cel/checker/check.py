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

from collections.abc import Mapping, Sequence
from dataclasses import replace

from gpupolicy.policy.cel.ast import Bind, Call, Comprehension, Ident, Index, ListLit, Literal, MapLit, Node, Select
from gpupolicy.policy.cel.checker.calls import compile_call
from gpupolicy.policy.cel.checker.comprehensions import compile_comprehension
from gpupolicy.policy.cel.core import (
    DYN,
    FREE,
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
    optional_inner,
    optional_of,
    type_name,
    undeclared,
)
from gpupolicy.policy.cel.runtime import ops
from gpupolicy.policy.cel.runtime.time import Duration, Timestamp
from gpupolicy.policy.cel.runtime.values import OptionalValue, TypedKeyMap, TypeValue, runtime_type


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
            inner = kind(optional_inner(operand.type)) if k == "optional" else k
            if inner not in ("map", "object", "dyn") or node.test_only:
                raise CompileIssue(
                    "cel_type_error", f"type '{type_name(operand.type)}' does not support field selection", node.pos
                )
            opt = node.optional
            t = optional_of(self._field_type(operand.type, field, node.pos))
            return Typed(lambda v, m: ops.optional_select(fn(v, m), field, opt), t)
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

    def _field_type(self, t: StaticType, field: str, pos: int) -> StaticType:
        """The type of ``field`` selected from a value of type ``t`` (or from inside an optional of it)."""
        base = optional_inner(t) if kind(t) == "optional" else t
        if kind(base) == "map":
            return base[2]
        if kind(base) == "object":
            fields = self.objects[str(base[1])]
            if field not in fields:
                raise CompileIssue("cel_undeclared_reference", f"undefined field '{field}'", pos)
            return fields[field]
        return DYN

    def _index(self, node: Index) -> Typed:
        operand, key = self.compile(node.operand), self.compile(node.index)
        k, kk = kind(operand.type), kind(key.type)
        if node.optional or k == "optional":
            container = optional_inner(operand.type) if k == "optional" else operand.type
            ck = kind(container)
            if ck not in ("map", "list", "dyn") or (ck == "list" and kk not in ("int", "uint", "dyn")):
                raise no_overload("_[?_]", node.pos, operand.type, key.type)
            if ck == "map" and not assignable(key.type, container[1]):
                raise no_overload("_[?_]", node.pos, operand.type, key.type)
            # the key's type as for _[_]: <K, V>(map(K, V), K) and (list(V), int)
            wrong_map_key = k == "map" and not assignable(key.type, operand.type[1])
            if wrong_map_key or (k == "list" and kk not in ("int", "dyn")):
                raise no_overload("_[?_]", node.pos, operand.type, key.type)
            ofn, kfn, opt = operand.fn, key.fn, node.optional
            t = optional_of(container[-1] if ck in ("list", "map") else DYN)
            return Typed(lambda v, m: ops.optional_index(ofn(v, m), kfn(v, m), opt), t)
        if k == "list":
            if kk not in ("int", "uint", "dyn"):
                raise no_overload("_[_]", node.pos, operand.type, key.type)
            result_type: StaticType = operand.type[1]
        elif k == "map":
            if not assignable(key.type, operand.type[1]):  # cel-go: _[_] is <K, V>(map(K, V), K) -> V
                raise no_overload("_[_]", node.pos, operand.type, key.type)
            if isinstance(node.index, Literal) and node.index.value is None:  # a constant qualifier, planned early
                raise CompileIssue(
                    "cel_constant_error", "program instantiation failed: invalid qualifier type: types.Null", node.pos
                )
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
        _check_optional_entries(node.optional, items, node.items)
        types = [optional_inner(item.type) if i in node.optional else item.type for i, item in enumerate(items)]
        if id(node) in self.heterogeneous_ok:
            elem = DYN
        else:
            elem = _homogeneous(
                [(t, n.pos, _literal_type(t, n, i in node.optional)) for i, (t, n) in enumerate(zip(types, node.items))]
            )
        fns = [item.fn for item in items]
        constant = all(item.const for item in items)  # cel-go's OptOptimize builds these when planning
        if node.optional:
            return Typed(optional_list(fns, node.optional), ("list", elem))
        return Typed(lambda v, m: [f(v, m) for f in fns], ("list", elem), const=constant)

    def _map(self, node: MapLit) -> Typed:
        entries = [(self.compile(k), self.compile(val)) for k, val in node.entries]
        _check_optional_entries(node.optional, [val for _, val in entries], [vn for _, vn in node.entries])
        exempt = id(node) in self.heterogeneous_ok
        for (key, _), (knode, _) in zip(entries, node.entries):
            if kind(key.type) not in _MAP_KEY_KINDS:  # cel-go takes more; bytes keys crash it, maps we refuse
                raise CompileIssue("cel_type_error", f"unsupported map key type: {type_name(key.type)}", knode.pos)
        t: StaticType = (
            ("map", DYN, DYN)
            if exempt
            else (
                "map",
                _homogeneous(
                    [(k.type, kn.pos, _literal_type(k.type, kn)) for (k, _), (kn, _) in zip(entries, node.entries)]
                ),
                _homogeneous(
                    [
                        (
                            optional_inner(val.type) if i in node.optional else val.type,
                            vn.pos,
                            _literal_type(val.type, vn, i in node.optional),
                        )
                        for i, ((_, val), (_, vn)) in enumerate(zip(entries, node.entries))
                    ]
                ),
            )
        )
        fns = [(k.fn, val.fn) for k, val in entries]
        optional = node.optional

        def build(v: Vars, m: Meter) -> object:
            out: dict[object, object] = {}
            typed: TypedKeyMap | None = None  # keys other than strings: one entry per key and type, as cel-go
            for i, (kf, vf) in enumerate(fns):
                key = kf(v, m)
                if not isinstance(key, _MAP_KEY_VALUES):
                    raise EvalError(f"unsupported map key type: {runtime_type(key)}")
                value = present_value(vf(v, m)) if i in optional else vf(v, m)
                if value is _ABSENT:  # {?k: opt}: the entry only when opt has a value
                    continue
                if typed is None and key.__class__ is str:
                    out[key] = value  # a repeated key keeps the last value
                    continue
                typed = typed if typed is not None else TypedKeyMap(out)
                typed.put(key, value)
            return out if typed is None else typed

        constant = not optional and all(k.const and val.const for k, val in entries)
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


_MAP_KEY_KINDS = frozenset(
    {"int", "uint", "bool", "string", "dyn", "double", "null_type", "timestamp", "duration", "type", "optional", "list"}
)
_MAP_KEY_VALUES = (int, str, float, type(None), Duration, Timestamp, TypeValue, OptionalValue, list, tuple)
_ABSENT = object()


def present_value(value: object) -> object:
    """The value of an optional entry, or ``_ABSENT`` for ``optional.none()``."""
    if not isinstance(value, OptionalValue):
        raise EvalError(f"cannot initialize optional entry from non-optional value {runtime_type(value)}")
    return value.value if value.present else _ABSENT


def optional_list(fns: list[Fn], optional: frozenset[int]) -> Fn:
    """``[a, ?b]``: the elements, leaving out the optional ones without a value."""

    def build(v: Vars, m: Meter) -> object:
        out: list[object] = []
        for i, f in enumerate(fns):
            value = f(v, m)
            if i in optional:
                value = present_value(value)
                if value is _ABSENT:
                    continue
            out.append(value)
        return out

    return build


def _check_optional_entries(optional: frozenset[int], values: list[Typed], nodes: Sequence[Node]) -> None:
    """cel-go types ``?x`` in a literal as ``optional_type(T)``: a value of another static type is an error. A value
    of type ``dyn`` passes cel-go's checker but crashes its homogeneous-literal validator (the API server answers
    with an internal error, and nothing is accepted): refused too."""
    for i in optional:
        if kind(values[i].type) != "optional":
            raise CompileIssue(
                "cel_type_error",
                f"expected type 'optional_type' but found '{type_name(values[i].type)}'",
                nodes[i].pos,
            )


def _literal_type(t: StaticType, node: Node, optional_entry: bool = False) -> StaticType:
    """The type cel-go's homogeneous-literal validator sees for one element: its checked type, where ``dyn`` is a
    type like any other, except that the empty literals and ``optional.none()`` leave their parameters open."""
    if optional_entry:
        inner = _literal_type(t, node)
        return inner[1] if isinstance(inner, tuple) and inner[0] == "optional" else DYN
    if isinstance(node, ListLit) and not node.items:
        return ("list", FREE)
    if isinstance(node, MapLit) and not node.entries:
        return ("map", FREE, FREE)
    if isinstance(node, Call) and node.name == "none" and isinstance(node.target, Ident) and not node.args:
        return ("optional", FREE) if node.target.name == "optional" else t
    return t


def _equivalent(a: StaticType, b: StaticType) -> bool:
    """cel-go's ``IsEquivalentType``, with open parameters (``FREE``) matching anything."""
    if FREE in (a, b):
        return True
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and a[0] == b[0] and all(map(_equivalent, a[1:], b[1:]))
    return a == b


def _homogeneous(types: list[tuple[StaticType, int, StaticType]]) -> StaticType:
    """Kubernetes validates homogeneous aggregate literals: every element's type must be equivalent to the first's
    (``[1, "a"]``, ``[dyn(1), "a"]`` and ``[[1], [dyn(1)]]`` are type errors; ``[[1], []]`` is not)."""
    if not types:
        return FREE  # [] and {}: open parameters, bound by what they meet
    common, first = types[0][0], types[0][2]
    for t, pos, seen in types[1:]:
        if not _equivalent(first, seen) or not assignable(common, t):
            raise CompileIssue(
                "cel_type_error", f"expected type '{type_name(first)}' but found '{type_name(seen)}'", pos
            )
        common = join(common, t)
        if FREE in str(first):  # the first element's open parameters take the next element's types
            first = seen
    return common


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
