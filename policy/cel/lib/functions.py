"""The function library of the Kubernetes CEL environment, with static signatures.

Each function name maps to overloads ``(params, result, impl)``; for member (receiver-style)
functions the receiver is the first parameter. The compiler checks static argument types
against the overloads (``dyn`` matches anything) and, at run time, dispatches on the actual
values. Implementations take plain Python values and raise :class:`EvalError`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gpupolicy.policy.cel.core import ANY, DYN, EvalError, StaticType, kind, list_of
from gpupolicy.policy.cel.lib import formats, lists, net, regex, strings, url
from gpupolicy.policy.cel.lib import time as timelib
from gpupolicy.policy.cel.runtime import gostrconv
from gpupolicy.policy.cel.runtime.time import Duration, Timestamp, add_durations
from gpupolicy.policy.cel.runtime.values import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    OptionalValue,
    QuantityResult,
    TypeValue,
    Uint,
    cel_equal,
    compare,
    runtime_type,
)
from gpupolicy.policy.quantity import Quantity, QuantityError
from gpupolicy.policy.semver import Semver, SemverError

Impl = Callable[..., object]
Q, S = "quantity", "semver"
STR, INT, UINT, DBL, BOOL, BYTES = "string", "int", "uint", "double", "bool", "bytes"
LIST, MAP = ("list", DYN), ("map", DYN, DYN)


@dataclass(frozen=True)
class Overload:
    params: tuple[StaticType, ...]
    result: StaticType
    impl: Impl


def _value_matches(param: StaticType, value: object) -> bool:
    k = kind(param)
    if k == "dyn":
        return True
    if k == "int":
        return isinstance(value, int) and not isinstance(value, (bool, Uint))
    if k == "uint":
        return isinstance(value, Uint)
    if k == "bool":
        return isinstance(value, bool)
    if k == "double":
        return isinstance(value, float)
    if k == "string":
        return isinstance(value, str)
    if k == "bytes":
        return isinstance(value, bytes)
    if k == "list":
        return isinstance(value, (list, tuple))
    if k == "map":
        return isinstance(value, Mapping)
    if k == "quantity":
        return isinstance(value, Quantity)
    if k == "semver":
        return isinstance(value, Semver)
    if k == "optional":
        return isinstance(value, OptionalValue)
    if k == "ip":
        return isinstance(value, net.IP)
    if k == "cidr":
        return isinstance(value, net.CIDR)
    if k == "url":
        return isinstance(value, url.URL)
    if k == "timestamp":
        return isinstance(value, Timestamp)
    if k == "duration":
        return isinstance(value, Duration)
    if k == "format":
        return isinstance(value, formats.NamedFormat)
    return False


def static_matches(param: StaticType, arg: StaticType) -> bool:
    return kind(param) == "dyn" or kind(arg) == "dyn" or kind(param) == kind(arg)


def dispatch(name: str, overloads: Sequence[Overload], args: Sequence[object]) -> object:
    for overload in overloads:
        if len(overload.params) == len(args) and all(_value_matches(p, a) for p, a in zip(overload.params, args)):
            return overload.impl(*args)
    types = ", ".join(runtime_type(a) for a in args)
    raise EvalError(f"no such overload: {name}({types})")


Checker = Callable[[object], bool]
_CLASS_OF = {"string": str, "bool": bool, "double": float, "bytes": bytes, "uint": Uint, "quantity": Quantity,
             "semver": Semver, "optional": OptionalValue, "ip": net.IP, "cidr": net.CIDR,
             "url": url.URL, "timestamp": Timestamp, "duration": Duration,
             "format": formats.NamedFormat}  # fmt: skip


def _checker(param: StaticType) -> Checker | None:
    """A fast run-time test for one parameter type; None means anything matches."""
    k = kind(param)
    if k == "dyn":
        return None
    if k in _CLASS_OF:
        cls = _CLASS_OF[k]
        return lambda v: isinstance(v, cls)
    return lambda v: _value_matches(param, v)


def dispatcher(name: str, overloads: Sequence[Overload], arity: int) -> Callable[[Sequence[object]], object]:
    """Pre-build the run-time overload choice for one call site."""
    table = [
        (o.impl, [(i, c) for i, c in enumerate(map(_checker, o.params)) if c is not None])
        for o in overloads
        if len(o.params) == arity
    ]

    def call(args: Sequence[object]) -> object:
        for impl, checks in table:
            for i, check in checks:
                if not check(args[i]):
                    break
            else:
                return impl(*args)
        return dispatch(name, overloads, args)

    return call


# --- conversions ----------------------------------------------------------------------


def _conversion_error(target: str) -> EvalError:
    """cel-go's error for a string that Go's strconv refuses (syntax, or out of range)."""
    return EvalError(f"type conversion error from 'string' to '{target}'")


def _to_int(value: object) -> int:
    if isinstance(value, float):
        if math.isnan(value) or not (INT64_MIN <= value < 2.0**63):
            raise EvalError("integer overflow converting double to int")
        return int(value)
    if isinstance(value, str):
        parsed = gostrconv.parse_int(value)
        if parsed is None:
            raise _conversion_error("int")
        return parsed
    result: int = int(value)  # type: ignore[call-overload]
    if not INT64_MIN <= result <= INT64_MAX:
        raise EvalError("integer overflow")
    return result


def _to_uint(value: object) -> Uint:
    if isinstance(value, float):
        if math.isnan(value) or not (0 <= value < 2.0**64):
            raise EvalError("unsigned integer overflow converting double to uint")
        return Uint(int(value))
    if isinstance(value, str):
        parsed = gostrconv.parse_uint(value)
        if parsed is None:
            raise _conversion_error("uint")
        return Uint(parsed)
    result = int(value)  # type: ignore[call-overload]
    if not 0 <= result <= UINT64_MAX:
        raise EvalError("unsigned integer overflow")
    return Uint(result)


def _to_double(value: object) -> float:
    if isinstance(value, str):
        parsed = gostrconv.parse_float(value)
        if parsed is None:
            raise _conversion_error("double")
        return parsed
    return float(value)  # type: ignore[arg-type]


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value)
    if text in ("true", "True", "TRUE", "t", "1"):
        return True
    if text in ("false", "False", "FALSE", "f", "0"):
        return False
    raise EvalError(f"cannot convert {text!r} to bool")


def _to_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _type_of(value: object) -> TypeValue:
    return TypeValue(runtime_type(value))


# --- quantity and semver --------------------------------------------------------------


def _quantity(text: str) -> Quantity:
    try:
        return Quantity.parse(text)
    except QuantityError as err:
        raise EvalError(str(err)) from None


def _is_quantity(text: str) -> bool:
    try:
        Quantity.parse(text)
    except QuantityError:
        return False
    return True


def _semver(text: str, normalize: bool = False) -> Semver:
    try:
        return Semver.parse(text, normalize=normalize)
    except SemverError as err:
        raise EvalError(str(err)) from None


def _is_semver(text: str, normalize: bool = False) -> bool:
    try:
        Semver.parse(text, normalize=normalize)
    except SemverError:
        return False
    return True


def _as_integer(q: Quantity) -> int:
    """Kubernetes answers from Go's representation: ``quantity("1.5Gi").asInteger()`` is an error there."""
    value = q.go_as_int64()
    if value is None:
        raise EvalError("cannot convert value to integer")
    return value


def _q_int(n: int) -> Quantity:
    return Quantity.from_int(n)


# --- lists and sets -------------------------------------------------------------------


def _contains_all(container: Sequence[object], items: Sequence[object]) -> bool:
    return all(any(cel_equal(x, y) for y in container) for x in items)


def _intersects(a: Sequence[object], b: Sequence[object]) -> bool:
    return any(any(cel_equal(x, y) for y in b) for x in a)


def _list_index_of(items: Sequence[object], value: object) -> int:
    return next((i for i, x in enumerate(items) if cel_equal(x, value)), -1)


def _list_last_index_of(items: Sequence[object], value: object) -> int:
    return next((i for i in range(len(items) - 1, -1, -1) if cel_equal(items[i], value)), -1)


def _is_sorted(items: Sequence[object]) -> bool:
    return all((compare(a, b) or 0) <= 0 for a, b in itertools.pairwise(items))


def _extreme(items: Sequence[object], sign: int, name: str) -> object:
    if not items:
        raise EvalError(f"{name} called on empty list")
    best = items[0]
    for item in items[1:]:
        if (compare(item, best) or 0) * sign > 0:
            best = item
    return best


def _sum(items: Sequence[object]) -> object:
    if not items:
        return 0
    total = items[0]
    for item in items[1:]:
        if runtime_type(item) != runtime_type(total):
            raise EvalError(f"no such overload: sum of {runtime_type(total)} and {runtime_type(item)}")
        total = add_durations(total, item) if isinstance(total, Duration) else total + item  # type: ignore[arg-type, operator]
    if isinstance(total, int) and not isinstance(total, Uint) and not INT64_MIN <= total <= INT64_MAX:
        raise EvalError("integer overflow")
    return Uint(total) if isinstance(total, Uint) or isinstance(items[0], Uint) else total  # type: ignore[call-overload]


def _size(value: Sequence[object] | str | bytes | Mapping[object, object]) -> int:
    return len(value)


# --- optional values ------------------------------------------------------------------

OPT = "optional"


def _is_zero(value: object) -> bool:
    if value is None or value is False:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == 0
    if isinstance(value, (str, bytes, list, tuple, Mapping)):
        return len(value) == 0
    if isinstance(value, Duration):
        return value.ns == 0
    if isinstance(value, Timestamp):
        return (value.sec, value.nsec) == (-62135596800, 0)  # Go's zero time.Time
    return False


def _opt_value(opt: OptionalValue) -> object:
    if not opt.present:
        raise EvalError("optional.none() dereference")
    return opt.value


# --- the table ------------------------------------------------------------------------


def _o(params: tuple[StaticType, ...], result: StaticType, impl: Impl) -> Overload:
    return Overload(params, result, impl)


_SIZE = [_o((STR,), INT, _size), _o((BYTES,), INT, _size), _o((LIST,), INT, _size), _o((MAP,), INT, _size)]

GLOBAL: dict[str, list[Overload]] = {
    "size": _SIZE,
    "int": [_o((t,), INT, _to_int) for t in (INT, UINT, DBL, STR)],
    "uint": [_o((t,), UINT, _to_uint) for t in (INT, UINT, DBL, STR)],
    "double": [_o((t,), DBL, _to_double) for t in (INT, UINT, DBL, STR)],
    # cel-go's string overloads plus Kubernetes' string(ip) and string(cidr); none for quantity, semver or url
    "string": [
        _o((t,), STR, strings.to_string)
        for t in (INT, UINT, DBL, STR, BOOL, BYTES, "timestamp", "duration", "ip", "cidr")
    ],
    "bool": [_o((BOOL,), BOOL, _to_bool), _o((STR,), BOOL, _to_bool)],
    "bytes": [_o((STR,), BYTES, _to_bytes), _o((BYTES,), BYTES, _to_bytes)],
    "type": [_o((DYN,), "type", _type_of)],
    "dyn": [_o((DYN,), DYN, lambda v: v)],
    "matches": [_o((STR, STR), BOOL, regex.matches)],
    "quantity": [_o((STR,), Q, _quantity)],
    "isQuantity": [_o((STR,), BOOL, _is_quantity)],
    "semver": [_o((STR,), S, _semver), _o((STR, BOOL), S, _semver)],
    "isSemver": [_o((STR,), BOOL, _is_semver), _o((STR, BOOL), BOOL, _is_semver)],
    "sign": [_o((Q,), INT, Quantity.sign)],
    "sets.contains": [_o((LIST, LIST), BOOL, _contains_all)],
    "sets.intersects": [_o((LIST, LIST), BOOL, _intersects)],
    "sets.equivalent": [_o((LIST, LIST), BOOL, lambda a, b: _contains_all(a, b) and _contains_all(b, a))],
    "strings.quote": [_o((STR,), STR, strings.quote)],
    "ip": [_o((STR,), "ip", net.ip)],
    "isIP": [_o((STR,), BOOL, net.is_ip)],
    "ip.isCanonical": [_o((STR,), BOOL, net.is_canonical)],
    "cidr": [_o((STR,), "cidr", net.cidr)],
    "url": [_o((STR,), "url", url.url)],
    "isURL": [_o((STR,), BOOL, url.is_url)],
    "isCIDR": [_o((STR,), BOOL, net.is_cidr)],
    "optional.of": [_o((DYN,), OPT, lambda v: OptionalValue(True, v))],
    "optional.none": [_o((), OPT, lambda: OptionalValue(False))],
    "optional.ofNonZeroValue": [_o((DYN,), OPT, lambda v: OptionalValue(not _is_zero(v), v))],
}

MEMBER: dict[str, list[Overload]] = {
    "size": _SIZE,
    "contains": [_o((STR, STR), BOOL, lambda s, t: t in s)],
    "startsWith": [_o((STR, STR), BOOL, lambda s, t: s.startswith(t))],
    "endsWith": [_o((STR, STR), BOOL, lambda s, t: s.endswith(t))],
    "matches": [_o((STR, STR), BOOL, regex.matches)],
    "find": [_o((STR, STR), STR, regex.find)],
    "findAll": [
        _o((STR, STR), list_of(STR), regex.find_all),
        _o((STR, STR, INT), list_of(STR), regex.find_all),
    ],
    "charAt": [_o((STR, INT), STR, strings.char_at)],
    "indexOf": [
        _o((STR, STR), INT, strings.index_of),
        _o((STR, STR, INT), INT, strings.index_of),
        _o((LIST, DYN), INT, _list_index_of),
    ],
    "lastIndexOf": [
        _o((STR, STR), INT, strings.last_index_of),
        _o((STR, STR, INT), INT, strings.last_index_of),
        _o((LIST, DYN), INT, _list_last_index_of),
    ],
    "lowerAscii": [_o((STR,), STR, strings.lower_ascii)],
    "upperAscii": [_o((STR,), STR, strings.upper_ascii)],
    "trim": [_o((STR,), STR, strings.trim)],
    "replace": [
        _o((STR, STR, STR), STR, strings.replace),
        _o((STR, STR, STR, INT), STR, strings.replace),
    ],
    "split": [_o((STR, STR), list_of(STR), strings.split), _o((STR, STR, INT), list_of(STR), strings.split)],
    "substring": [_o((STR, INT), STR, strings.substring), _o((STR, INT, INT), STR, strings.substring)],
    "format": [_o((STR, LIST), STR, strings.format_string)],
    "join": [_o((LIST,), STR, strings.join), _o((LIST, STR), STR, strings.join)],
    "isSorted": [_o((LIST,), BOOL, _is_sorted)],
    "sum": [_o((LIST,), DYN, _sum)],
    "min": [_o((LIST,), DYN, lambda items: _extreme(items, -1, "min"))],
    "max": [_o((LIST,), DYN, lambda items: _extreme(items, 1, "max"))],
    "compareTo": [_o((Q, Q), INT, Quantity.compare_to), _o((S, S), INT, Semver.compare_to)],
    "isGreaterThan": [
        _o((Q, Q), BOOL, lambda a, b: a.compare_to(b) > 0),
        _o((S, S), BOOL, lambda a, b: a.compare_to(b) > 0),
    ],
    "isLessThan": [
        _o((Q, Q), BOOL, lambda a, b: a.compare_to(b) < 0),
        _o((S, S), BOOL, lambda a, b: a.compare_to(b) < 0),
    ],
    # results marked as Kubernetes' pointer results (see QuantityResult)
    "add": [
        _o((Q, Q), Q, lambda q, o: q.add(o).rebuilt_as(QuantityResult)),
        _o((Q, INT), Q, lambda q, n: q.add(_q_int(n)).rebuilt_as(QuantityResult)),
    ],
    "sub": [
        _o((Q, Q), Q, lambda q, o: q.sub(o).rebuilt_as(QuantityResult)),
        _o((Q, INT), Q, lambda q, n: q.sub(_q_int(n)).rebuilt_as(QuantityResult)),
    ],
    "isInteger": [_o((Q,), BOOL, lambda q: q.go_as_int64() is not None)],
    "asInteger": [_o((Q,), INT, _as_integer)],
    "asApproximateFloat": [_o((Q,), DBL, Quantity.go_approximate_float)],
    "hasValue": [_o((OPT,), BOOL, lambda o: o.present)],
    # the checker types these results from the optional's value type (calls._optional_result)
    "value": [_o((OPT,), ANY, _opt_value)],
    "orValue": [_o((OPT, DYN), ANY, lambda o, d: o.value if o.present else d)],
    "or": [_o((OPT, OPT), OPT, lambda o, p: o if o.present else p)],
    "getScheme": [_o(("url",), STR, lambda u: u.parts.scheme)],
    "getHost": [_o(("url",), STR, url.host)],
    "getHostname": [_o(("url",), STR, url.hostname)],
    "getPort": [_o(("url",), STR, url.port)],
    "getEscapedPath": [_o(("url",), STR, url.escaped_path)],
    "getQuery": [_o(("url",), ("map", STR, ("list", STR)), url.query)],
    "family": [_o(("ip",), INT, net.family)],
    "isUnspecified": [_o(("ip",), BOOL, lambda v: v.addr.is_unspecified)],
    "isLoopback": [_o(("ip",), BOOL, lambda v: v.addr.is_loopback)],
    "isLinkLocalMulticast": [_o(("ip",), BOOL, net.is_link_local_multicast)],
    "isLinkLocalUnicast": [_o(("ip",), BOOL, lambda v: v.addr.is_link_local and not v.addr.is_multicast)],
    "isGlobalUnicast": [_o(("ip",), BOOL, net.is_global_unicast)],
    "containsIP": [_o(("cidr", "ip"), BOOL, net.contains_ip), _o(("cidr", STR), BOOL, net.contains_ip)],
    "containsCIDR": [
        _o(("cidr", "cidr"), BOOL, net.contains_cidr),
        _o(("cidr", STR), BOOL, net.contains_cidr),
    ],
    "ip": [_o(("cidr",), "ip", lambda c: net.IP(c.addr))],
    "masked": [_o(("cidr",), "cidr", net.masked)],
    "prefixLength": [_o(("cidr",), INT, lambda c: c.prefix)],
    "major": [_o((S,), INT, lambda v: v.major)],
    "minor": [_o((S,), INT, lambda v: v.minor)],
    "patch": [_o((S,), INT, lambda v: v.patch)],
}


def _register(table: dict[str, list[Overload]], decls: Mapping[str, list[timelib.Decl]]) -> None:
    """Add a library module's ``(params, result, impl)`` entries to a table."""
    for name, entries in decls.items():
        table.setdefault(name, []).extend(Overload(*entry) for entry in entries)


for _global, _member in (
    (timelib.GLOBAL, timelib.MEMBER),
    (lists.GLOBAL, lists.MEMBER),
    (formats.GLOBAL, formats.MEMBER),
):
    _register(GLOBAL, _global)
    _register(MEMBER, _member)
_register(GLOBAL, timelib.CONVERSIONS)

NAMESPACES = frozenset(name.partition(".")[0] for name in GLOBAL if "." in name) - {"ip"} | {"cel", "optional"}

# Functions whose cost grows with the size of their arguments (strings, lists).
LINEAR_COST = frozenset(
    {"contains", "startsWith", "endsWith", "matches", "find", "findAll", "indexOf", "lastIndexOf", "lowerAscii",
     "upperAscii", "trim", "replace", "split", "substring", "format", "join", "isSorted", "sum", "min",
     "max", "sets.contains", "sets.intersects", "sets.equivalent", "strings.quote", "string", "bytes"}
)  # fmt: skip
# Functions whose result may be much larger than their arguments: they also pay 1 per 10 characters built.
RESULT_COST = frozenset({"format", "join", "replace", "strings.quote"})
