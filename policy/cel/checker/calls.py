"""Check and compile operator and function calls (the ``Call`` node)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gpupolicy.policy.cel.ast import Call, Ident, ListLit, Literal, MapLit, Node, children
from gpupolicy.policy.cel.core import (
    ANY,
    DYN,
    FREE,
    Checker,
    CompileIssue,
    EvalError,
    Fn,
    Meter,
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
from gpupolicy.policy.cel.lib import functions, lists, optionals, strings
from gpupolicy.policy.cel.lib.regex import RegexError, compile_regex
from gpupolicy.policy.cel.runtime import ops
from gpupolicy.policy.cel.runtime.values import OptionalValue, cel_equal, cel_not_equal, compare, runtime_type

_ARITH = {"_+_": ops.add, "_-_": ops.sub, "_*_": ops.mul, "_/_": ops.div, "_%_": ops.mod}
_CMP: dict[str, Callable[[int], bool]] = {
    "_<_": lambda c: c < 0,
    "_<=_": lambda c: c <= 0,
    "_>_": lambda c: c > 0,
    "_>=_": lambda c: c >= 0,
}


def compile_call(compiler: Checker, node: Call) -> Typed:
    name = node.name
    if name in ("_&&_", "_||_"):
        return _logical(compiler, node)
    if name == "_?_:_":
        return _conditional(compiler, node)
    if name == "format" and node.target is not None:
        compiler.heterogeneous_ok.update(_literal_ids(node.args))  # cel-go exempts format's arguments
    args = [compiler.compile(a) for a in node.args]
    if name in ("_==_", "_!=_"):
        return _equality(node, args)
    if name in _CMP:
        return _comparison(node, args)
    if name in _ARITH:
        return _arith(node, args)
    if name in ("!_", "-_"):
        return _unary(node, args[0])
    if name == "@in":
        return _in(node, args)
    return _function(compiler, node, args)


def _literal_ids(nodes: Sequence[Node]) -> set[int]:
    found: set[int] = set()
    stack = list(nodes)
    while stack:
        n = stack.pop()
        if isinstance(n, (ListLit, MapLit)):
            found.add(id(n))
        stack.extend(children(n))
    return found


def _require_bool(t: StaticType, pos: int, op: str, other: StaticType) -> None:
    if kind(t) not in ("bool", "dyn"):
        raise no_overload(op, pos, t, other)


def _logical(compiler: Checker, node: Call) -> Typed:
    left, right = (compiler.compile(a) for a in node.args)
    for side in (left, right):
        _require_bool(side.type, node.pos, node.name, right.type if side is left else left.type)
    lf, rf = left.fn, right.fn
    decisive = node.name == "_||_"  # the value that decides the result on its own

    def run(v: Vars, m: Meter) -> object:
        err: EvalError | None = None
        try:
            a = lf(v, m)
            if a is decisive:
                return decisive
            if not isinstance(a, bool):
                err = EvalError(f"no such overload: {runtime_type(a)} {node.name.strip('_')} bool")
        except EvalError as e:
            err = e
        b = rf(v, m)
        if b is decisive:
            return decisive
        if not isinstance(b, bool):
            raise EvalError(f"no such overload: bool {node.name.strip('_')} {runtime_type(b)}")
        if err is not None:
            raise err
        return not decisive

    return Typed(run, "bool")


def _conditional(compiler: Checker, node: Call) -> Typed:
    cond, yes, no = (compiler.compile(a) for a in node.args)
    _require_bool(cond.type, node.pos, "_?_:_", yes.type)
    cf, yf, nf = cond.fn, yes.fn, no.fn

    def run(v: Vars, m: Meter) -> object:
        c = cf(v, m)
        if c is True:
            return yf(v, m)
        if c is False:
            return nf(v, m)
        raise EvalError(f"no such overload: {runtime_type(c)} ? _ : _")

    if not assignable(yes.type, no.type):  # cel-go: _?_:_ is <A>(bool, A, A) -> A
        raise no_overload("_?_:_", node.pos, cond.type, yes.type, no.type)
    t = join(yes.type, no.type)
    return Typed(run, t)


def _equality(node: Call, args: Sequence[Typed]) -> Typed:
    a, b = args
    if not ops.equatable(a.type, b.type):
        raise no_overload(node.name, node.pos, a.type, b.type)
    af, bf = a.fn, b.fn
    if node.name == "_==_":
        eq = cel_equal
        return Typed(lambda v, m: eq(af(v, m), bf(v, m)), "bool")
    ne = cel_not_equal
    return Typed(lambda v, m: ne(af(v, m), bf(v, m)), "bool")


def _comparison(node: Call, args: Sequence[Typed]) -> Typed:
    a, b = args
    if not ops.comparable(a.type, b.type):
        raise no_overload(node.name, node.pos, a.type, b.type)
    af, bf, test = a.fn, b.fn, _CMP[node.name]

    def run(v: Vars, m: Meter) -> object:
        order = compare(af(v, m), bf(v, m))
        if order is None:  # cel-go's Double.Compare: NaN is not ordered, the comparison is an error
            raise EvalError("NaN values cannot be ordered")
        return test(order)

    return Typed(run, "bool")


def _arith(node: Call, args: Sequence[Typed]) -> Typed:
    a, b = args
    result = ops.arith_result(node.name.strip("_"), a.type, b.type)
    if result is None:
        raise no_overload(node.name, node.pos, a.type, b.type)
    af, bf, op = a.fn, b.fn, _ARITH[node.name]

    def run(v: Vars, m: Meter) -> object:
        x, y = af(v, m), bf(v, m)
        if isinstance(x, (str, bytes, list, tuple)):  # a concatenation costs what it builds: both sides
            m.charge(1 + (len(x) + (len(y) if isinstance(y, (str, bytes, list, tuple)) else 0)) // 10)
        return op(x, y)

    return Typed(run, result)


def _unary(node: Call, arg: Typed) -> Typed:
    k = kind(arg.type)
    if node.name == "!_":
        if k not in ("bool", "dyn"):
            raise no_overload("!_", node.pos, arg.type)
        f = arg.fn
        return Typed(lambda v, m: ops.logical_not(f(v, m)), "bool")
    if k not in ("int", "double", "dyn"):
        raise no_overload("-_", node.pos, arg.type)
    f = arg.fn
    return Typed(lambda v, m: ops.neg(f(v, m)), arg.type)


def _in(node: Call, args: Sequence[Typed]) -> Typed:
    item, container = args
    k = kind(container.type)
    if k not in ("list", "map", "dyn") or (k != "dyn" and not assignable(item.type, container.type[1])):
        raise no_overload("@in", node.pos, item.type, container.type)
    if isinstance(node.args[1], ListLit) and not node.args[1].items:
        # cel-go's OptOptimize turns `x in []` into the constant false: x is never evaluated, its errors do not count
        return Typed(lambda v, m: False, "bool", const=True)
    f, c = item.fn, container.fn

    def run(v: Vars, m: Meter) -> object:
        box = c(v, m)
        if isinstance(box, (list, tuple)):
            m.charge(1 + len(box) // 10)
        return ops.contains(f(v, m), box)

    return Typed(run, "bool")


# --- library functions ------------------------------------------------------------------


_RESULT_TYPES = {**lists.RESULT_TYPES, **optionals.RESULT_TYPES}


def _resolve(compiler: Checker, node: Call) -> tuple[str, list[functions.Overload], bool]:
    """Return (display name, overloads, is_member) for a call, or raise an undeclared reference."""
    target = node.target
    if target is not None and isinstance(target, Ident) and not compiler.is_variable(target.name):
        qualified = f"{target.name}.{node.name}"
        if qualified in functions.GLOBAL:
            return qualified, functions.GLOBAL[qualified], False
        if target.name in functions.NAMESPACES:
            raise undeclared(qualified, node.pos)
    table = functions.MEMBER if target is not None else functions.GLOBAL
    if node.name not in table:
        raise undeclared(node.name, node.pos)
    return node.name, table[node.name], target is not None


def _function(compiler: Checker, node: Call, args: list[Typed]) -> Typed:
    name, overloads, member = _resolve(compiler, node)
    if member:
        assert node.target is not None
        args = [compiler.compile(node.target), *args]
    types = [a.type for a in args]
    candidates = [
        o for o in overloads if len(o.params) == len(types) and all(map(functions.static_matches, o.params, types))
    ]
    if name.startswith("sets.") and len(types) == 2 and not assignable(types[0], types[1]):
        candidates = []
    results = {o.result for o in candidates}
    result = results.pop() if len(results) == 1 else DYN
    if candidates and name in _RESULT_TYPES:  # list(T) in, list(T) out; optional_type(T) in, T out
        computed = _RESULT_TYPES[name](types)
        candidates = candidates if computed is not None else []
        result = computed if computed is not None else result
        if name in ("sum", "min", "max", "sort") and member and types[0] == ("list", FREE):
            # cel-go resolves an open element type (of [], [].filter(...), ...) to its first overload's: int
            result = ("list", "int") if name == "sort" else "int"
    if not candidates:
        raise no_overload(name, node.pos, *types)
    _check_constant_arguments(compiler, name, node, args)
    fns = [a.fn for a in args]
    linear = name in functions.LINEAR_COST or name in lists.LINEAR
    impl = candidates[0].impl if len(candidates) == 1 and "dyn" not in [kind(t) for t in types] else None
    run = _call_closure(fns, linear, impl, functions.dispatcher(name, overloads, len(args)))
    if member and name in ("or", "orValue"):
        run = _optional_or(fns[0], fns[1], unwrap=name == "orValue")
    if name in functions.RESULT_COST:
        run = _charging_result(run)

    if name == "sum" and member and result in lists.SUM_ZERO:  # an empty list sums to its type's zero
        run = _zero_for_empty(run, lists.SUM_ZERO[str(result)])
    if name in lists.TRACKED:  # pays for the list it builds, as cel-go's trackers
        return Typed(_tracked(name, fns, functions.dispatcher(name, overloads, len(args))), result)
    if name in CONVERSIONS and not member and len(args) == 1 and args[0].const:
        return _fold(run, result, node)
    return Typed(run, result)


# cel-go's type conversion functions (``overloads.IsTypeConversionFunction``; duration and timestamp are not here)
CONVERSIONS = frozenset({"bool", "bytes", "double", "dyn", "int", "string", "type", "uint"})


def _fold(run: Fn, result: StaticType, node: Call) -> Typed:
    """Kubernetes builds programs with cel-go's ``OptOptimize``: a type conversion of a constant argument (a
    literal, a folded conversion, a list or map literal of constants) is evaluated when the program is built, and
    a failing one is a compile error there ("program instantiation failed: ...")."""
    try:
        value = run({}, Meter(COST_UNLIMITED))
    except EvalError as err:
        raise CompileIssue("cel_constant_error", f"program instantiation failed: {err}", node.pos) from None
    return Typed(lambda v, m: value, result, const=True)


COST_UNLIMITED = 1 << 62


def _zero_for_empty(run: Fn, zero: object) -> Fn:
    def summed(v: Vars, m: Meter) -> object:
        total = run(v, m)
        return zero if total == 0 and type(total) is int else total

    return summed


def _tracked(name: str, fns: Sequence[Fn], choose: Callable[[Sequence[object]], object]) -> Fn:
    """An ext.Lists call that pays for the list it builds (or the pairs it compares), as cel-go's trackers."""

    def charged(v: Vars, m: Meter) -> object:
        values = [f(v, m) for f in fns]
        result = choose(values)
        m.charge(1 + lists.charge(name, values, result))
        return result

    return charged


_SIZED = (str, bytes, list, tuple)


def _charging_result(run: Fn) -> Fn:
    """A call that builds a string also pays for what it built (Kubernetes charges ``join`` by its
    result): a loop of a thousand megabyte-building calls spends the budget long before the memory."""

    def charged(v: Vars, m: Meter) -> object:
        result = run(v, m)
        if isinstance(result, _SIZED):
            m.charge(len(result) // 10)
        return result

    return charged


def _optional_or(lhs: Fn, rhs: Fn, unwrap: bool) -> Fn:
    """``o.or(p)`` and ``o.orValue(x)`` short-circuit as in cel-go (``evalOptionalOr``/``evalOptionalOrValue``):
    the alternative is evaluated only when ``o`` is empty, so its errors do not count otherwise."""

    def run(v: Vars, m: Meter) -> object:
        opt = lhs(v, m)
        if not isinstance(opt, OptionalValue):
            raise EvalError(f"no such overload: {runtime_type(opt)}.{'orValue' if unwrap else 'or'}")
        if opt.present:
            return opt.value if unwrap else opt
        return rhs(v, m)

    return run


def _call_closure(
    fns: Sequence[Fn], linear: bool, impl: functions.Impl | None, choose: Callable[[Sequence[object]], object]
) -> Fn:
    """The run-time closure of a call; one- and two-argument calls avoid building lists."""
    if len(fns) == 2:
        f0, f1 = fns

        def run2(v: Vars, m: Meter) -> object:
            a, b = f0(v, m), f1(v, m)
            if linear:
                m.charge(
                    1 + (len(a) if isinstance(a, _SIZED) else 0) // 10 + (len(b) if isinstance(b, _SIZED) else 0) // 10
                )
            return impl(a, b) if impl is not None else choose((a, b))

        return run2
    if len(fns) == 1:
        (f0,) = fns

        def run1(v: Vars, m: Meter) -> object:
            a = f0(v, m)
            if linear:
                m.charge(1 + (len(a) if isinstance(a, _SIZED) else 0) // 10)
            return impl(a) if impl is not None else choose((a,))

        return run1

    def run(v: Vars, m: Meter) -> object:
        values = [f(v, m) for f in fns]
        if linear:
            m.charge(1 + sum(len(x) for x in values if isinstance(x, _SIZED)) // 10)
        return impl(*values) if impl is not None else choose(values)

    return run


def _check_format(compiler: Checker, template: str, node: Call) -> None:
    """cel-go's format validator: ``"<literal>".format([...])`` with a list literal is checked by the static
    types of the list's elements (``"%d".format([1.5])`` is a compile error, ``"%d".format([dyn(1.5)])`` fails
    when it runs)."""
    (arg,) = node.args
    if not isinstance(arg, ListLit):
        return
    try:
        used = strings.validate_format(template, [_format_arg(compiler, item) for item in arg.items])
    except strings.FormatArgError as err:
        raise CompileIssue("cel_compile_error", str(err), err.pos) from None
    except EvalError as err:
        raise CompileIssue("cel_compile_error", str(err), node.pos) from None
    if used < len(arg.items):
        raise CompileIssue(
            "cel_compile_error",
            f"too many arguments supplied to string.format (expected {used}, got {len(arg.items)})",
            node.pos,
        )


def _format_arg(compiler: Checker, item: Node) -> strings.FormatArg:
    t = compiler.compile(item).type
    elements: tuple[Node, ...] = ()
    if isinstance(item, ListLit):
        elements = item.items
    elif isinstance(item, MapLit):
        elements = tuple(part for entry in item.entries for part in entry)
    # cel-go checks the attribute type (google.protobuf.Any) as a type of its own, not as dyn
    kind_ = "any" if t == ANY else kind(t)
    name = _FORMAT_TYPE_NAMES.get(kind_, kind_ if kind_ in ("list", "map") else type_name(t))
    return strings.FormatArg(kind_, name, item.pos, tuple(_format_arg(compiler, e) for e in elements))


# cel-go's names of the library types, as its format errors print them
_FORMAT_TYPE_NAMES = {
    "any": "google.protobuf.Any",
    "quantity": "kubernetes.Quantity",
    "semver": "kubernetes.Semver",
    "url": "kubernetes.URL",
    "ip": "net.IP",
    "cidr": "net.CIDR",
    "optional": "optional_type",
}


def _check_constant_arguments(compiler: Checker, name: str, node: Call, args: Sequence[Typed]) -> None:
    """What Kubernetes checks when it compiles a call: literal regexes (``matches``: the validator; ``find`` and
    ``findAll``: when the program is built) and ``format`` calls. Literal quantities and versions are checked
    only when the expression runs, as there."""
    if name in ("matches", "find", "findAll"):
        pattern_node = node.args[0] if node.target is not None else node.args[-1]
        if isinstance(pattern_node, Literal) and isinstance(pattern_node.value, str):
            try:
                compile_regex(pattern_node.value)
            except RegexError as err:
                raise CompileIssue("cel_compile_error", str(err), pattern_node.pos) from None
    elif name == "format" and isinstance(node.target, Literal) and isinstance(node.target.value, str):
        _check_format(compiler, node.target.value, node)
    elif name in ("duration", "timestamp") and node.target is None and len(node.args) == 1:
        _check_time_literal(name, node.args[0], args[0])


def _check_time_literal(name: str, node: Node, arg: Typed) -> None:
    """cel-go's ``ValidateDurationLiterals`` and ``ValidateTimestampLiterals`` (Kubernetes 1.29+): a literal
    argument is converted when the expression is compiled, and a bad one is a compile error."""
    if not isinstance(node, Literal) or isinstance(node.value, bool) or not isinstance(node.value, (str, int)):
        return
    try:
        functions.dispatch(name, functions.GLOBAL[name], [node.value])
    except EvalError as err:
        raise CompileIssue("cel_compile_error", f"invalid {name} argument: {err}", node.pos) from None
