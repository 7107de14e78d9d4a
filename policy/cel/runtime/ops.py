"""CEL operators at run time: arithmetic with int64/uint64 overflow checks, ``in``, indexing.

Static result types of operators live here too (``arith_result``), so the compiler can reject
``"a" + 1`` before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from gpupolicy.policy.cel.core import DYN, EvalError, StaticType, assignable, join, kind
from gpupolicy.policy.cel.runtime import time
from gpupolicy.policy.cel.runtime.time import Duration, Timestamp
from gpupolicy.policy.cel.runtime.values import (
    INT64_MAX,
    INT64_MIN,
    MAX_LIST,
    MAX_STRING,
    UINT64_MAX,
    OptionalValue,
    TypeValue,
    Uint,
    cel_not_equal,
    map_lookup,
    runtime_type,
)


def _int_result(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise EvalError("integer overflow")
    return value


def _uint_result(value: int) -> Uint:
    if not 0 <= value <= UINT64_MAX:
        raise EvalError("unsigned integer overflow")
    return Uint(value)


def _no_overload(op: str, a: object, b: object) -> EvalError:
    return EvalError(f"no such overload: {runtime_type(a)} {op} {runtime_type(b)}")


def _same_numeric(a: object, b: object) -> str | None:
    ta, tb = runtime_type(a), runtime_type(b)
    return ta if ta == tb and ta in ("int", "uint", "double") else None


def add(a: object, b: object) -> object:
    t = _same_numeric(a, b)
    if t == "int":
        return _int_result(a + b)  # type: ignore[operator]
    if t == "uint":
        return _uint_result(a + b)  # type: ignore[operator]
    if t == "double":
        return a + b  # type: ignore[operator]
    if isinstance(a, str) and isinstance(b, str):
        if len(a) + len(b) > MAX_STRING:
            raise EvalError(f"string result longer than {MAX_STRING} characters")
        return a + b
    if isinstance(a, bytes) and isinstance(b, bytes):
        if len(a) + len(b) > MAX_STRING:
            raise EvalError(f"bytes result longer than {MAX_STRING} bytes")
        return a + b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) + len(b) > MAX_LIST:
            raise EvalError(f"list result longer than {MAX_LIST} elements")
        return [*a, *b]
    if isinstance(a, Duration):
        if isinstance(b, Duration):
            return time.add_durations(a, b)
        if isinstance(b, Timestamp):
            return time.add_duration(b, a)
    if isinstance(a, Timestamp) and isinstance(b, Duration):
        return time.add_duration(a, b)
    raise _no_overload("+", a, b)


def sub(a: object, b: object) -> object:
    t = _same_numeric(a, b)
    if t == "int":
        return _int_result(a - b)  # type: ignore[operator]
    if t == "uint":
        return _uint_result(a - b)  # type: ignore[operator]
    if t == "double":
        return a - b  # type: ignore[operator]
    if isinstance(a, Duration) and isinstance(b, Duration):
        return time.sub_durations(a, b)
    if isinstance(a, Timestamp):
        if isinstance(b, Duration):
            return time.sub_duration(a, b)
        if isinstance(b, Timestamp):
            return time.sub_timestamps(a, b)
    raise _no_overload("-", a, b)


def mul(a: object, b: object) -> object:
    t = _same_numeric(a, b)
    if t == "int":
        return _int_result(a * b)  # type: ignore[operator]
    if t == "uint":
        return _uint_result(a * b)  # type: ignore[operator]
    if t == "double":
        return a * b  # type: ignore[operator]
    raise _no_overload("*", a, b)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def div(a: object, b: object) -> object:
    t = _same_numeric(a, b)
    if t in ("int", "uint"):
        if b == 0:
            raise EvalError("division by zero")
        q = _trunc_div(a, b)  # type: ignore[arg-type]
        return _int_result(q) if t == "int" else _uint_result(q)
    if t == "double":
        fa, fb = float(a), float(b)  # type: ignore[arg-type]
        if fb == 0.0:
            if fa == 0.0 or fa != fa:
                return float("nan")
            return math.copysign(math.inf, fa) * math.copysign(1.0, fb)
        return fa / fb
    raise _no_overload("/", a, b)


def mod(a: object, b: object) -> object:
    t = _same_numeric(a, b)
    if t in ("int", "uint"):
        if b == 0:
            raise EvalError("modulus by zero")
        if t == "int" and a == INT64_MIN and b == -1:
            raise EvalError("integer overflow")  # cel-go's moduloInt64Checked, like Go's MinInt64 % -1
        r = a - b * _trunc_div(a, b)  # type: ignore[operator, arg-type]
        return _int_result(r) if t == "int" else _uint_result(r)
    raise _no_overload("%", a, b)


def neg(a: object) -> object:
    if runtime_type(a) == "int":
        return _int_result(-a)  # type: ignore[operator]
    if isinstance(a, float):
        return -a
    raise EvalError(f"no such overload: -{runtime_type(a)}")


def logical_not(a: object) -> bool:
    if isinstance(a, bool):
        return not a
    raise EvalError(f"no such overload: !{runtime_type(a)}")


def contains(item: object, container: object) -> bool:
    """``item in container``; for a map, whether it holds the key (``"other.io" in device.attributes`` is false,
    although reading that domain gives an empty map)."""
    if isinstance(container, dict) and item.__class__ is str:
        return item in container
    if isinstance(container, Mapping):
        return map_lookup(container, item)[0]
    if isinstance(container, (list, tuple)):
        # cel-go's baseList.Contains: an element whose comparison errors is just not a match
        return any(not cel_not_equal(item, x) for x in container)
    raise EvalError(f"no such overload: {runtime_type(item)} in {runtime_type(container)}")


def index(container: object, key: object) -> object:
    if key.__class__ is str and isinstance(container, dict):
        try:
            return container[key]
        except KeyError:
            raise EvalError(f"no such key: {key}") from None
    if isinstance(container, Mapping):
        if isinstance(key, _NOT_QUALIFIERS):
            raise EvalError(f"invalid qualifier type: {qualifier_type(key)}")
        found, value = map_lookup(container, key)
        if not found:
            raise EvalError(f"no such key: {key}")
        return value
    if isinstance(container, (list, tuple)):
        return _list_index(container, key)
    raise EvalError(f"no such overload: {runtime_type(container)}[{runtime_type(key)}]")


# map keys cel-go can store but not look up with ``m[k]`` (its attribute qualifiers take strings, numbers, bools)
_NOT_QUALIFIERS = (type(None), Duration, Timestamp, TypeValue, OptionalValue)
_QUALIFIER_NAMES = {"null_type": "types.Null", "google.protobuf.Duration": "types.Duration",
                    "google.protobuf.Timestamp": "types.Timestamp", "type": "*types.Type",
                    "optional_type": "*types.Optional"}  # fmt: skip


def qualifier_type(key: object) -> str:
    """Go's name of a key's type, as cel-go's ``invalid qualifier type`` error writes it."""
    return _QUALIFIER_NAMES.get(runtime_type(key), runtime_type(key))


def _list_index(items: Sequence[object], key: object) -> object:
    if isinstance(key, bool) or not isinstance(key, (int, float)):
        raise EvalError(f"no such overload: list[{runtime_type(key)}]")
    if isinstance(key, float):
        if key != int(key):
            raise EvalError(f"unsupported index value {key} in list")
        key = int(key)
    if not 0 <= key < len(items):
        raise EvalError(f"index out of range: {key}")
    return items[key]


def select(operand: object, field: str) -> object:
    if isinstance(operand, dict):
        try:
            return operand[field]
        except KeyError:
            raise EvalError(f"no such key: {field}") from None
    if isinstance(operand, Mapping):
        try:
            return operand[field]
        except KeyError:
            raise EvalError(f"no such key: {field}") from None
    raise EvalError(f"type '{runtime_type(operand)}' does not support field selection")


def optional_select(operand: object, field: str, test: bool) -> OptionalValue:
    """``x.?f`` (``test``: absent gives none) and ``opt.f`` (selection inside an optional, where an absent field
    gives none too, as cel-go: ``{"a": {}}.?a.z`` is ``optional.none()``)."""
    if isinstance(operand, OptionalValue):
        if not operand.present:
            return operand
        operand, test = operand.value, True
    if test:
        if isinstance(operand, Mapping):
            return OptionalValue(True, operand[field]) if has_field(operand, field) else OptionalValue(False)
        if isinstance(operand, (list, tuple)):  # cel-go looks the field up as an index: a string is not one
            raise EvalError("unsupported index type 'string' in list")
        return OptionalValue(False)  # a string, a number, a version: no field, so none (as cel-go)
    return OptionalValue(True, select(operand, field))


def optional_index(container: object, key: object, test: bool) -> OptionalValue:
    """``x[?k]`` (``test``: a missing key or index gives none) and ``opt[k]`` (likewise)."""
    if isinstance(container, OptionalValue):
        if not container.present:
            return container
        container, test = container.value, True
    if test:
        if isinstance(container, Mapping):
            found, value = map_lookup(container, key)
            return OptionalValue(found, value)
        if isinstance(container, (list, tuple)) and isinstance(key, int) and not isinstance(key, bool):
            return OptionalValue(True, container[key]) if 0 <= key < len(container) else OptionalValue(False)
        if not isinstance(container, (list, tuple)):  # a value that has no elements (a string, a number, a
            return OptionalValue(False)  # version): none, as cel-go's optional index finds no attribute there
    return OptionalValue(True, index(container, key))


def has_field(operand: object, field: str) -> bool:
    if isinstance(operand, Mapping):
        # a map that reads every key (device.attributes: an unknown domain is an empty map) has every field
        return field in operand or hasattr(operand, "__missing__")
    raise EvalError(f"invalid type for field selection: {runtime_type(operand)}")


# --- static typing of operators ---------------------------------------------------------

NUMERIC = ("int", "uint", "double")
ORDERED = (*NUMERIC, "string", "bytes", "bool", "timestamp", "duration")
_TIME_ARITH = {("+", "duration", "duration"): "duration", ("+", "timestamp", "duration"): "timestamp",
               ("+", "duration", "timestamp"): "timestamp", ("-", "duration", "duration"): "duration",
               ("-", "timestamp", "duration"): "timestamp", ("-", "timestamp", "timestamp"): "duration"}  # fmt: skip


def arith_result(op: str, a: StaticType, b: StaticType) -> StaticType | None:
    """The static result type of ``a op b``; None when no overload can apply."""
    ka, kb = kind(a), kind(b)
    if ka == "dyn" or kb == "dyn":
        other = b if ka == "dyn" else a
        if kind(other) in ("timestamp", "duration") and op in "+-":
            return DYN
        return other if kind(other) in (*NUMERIC, "string", "bytes", "list") or kind(other) == "dyn" else None
    if (op, ka, kb) in _TIME_ARITH:
        return _TIME_ARITH[op, ka, kb]
    if ka != kb:
        return None
    if ka in NUMERIC:
        return a if op != "%" or ka != "double" else None
    if op == "+" and ka in ("string", "bytes"):
        return a
    if op == "+" and ka == "list":  # cel-go: _+_ is <A>(list(A), list(A)) -> list(A)
        return join(a, b) if assignable(a, b) else None
    return None


def comparable(a: StaticType, b: StaticType) -> bool:
    ka, kb = kind(a), kind(b)
    if "dyn" in (ka, kb):
        return (ka if kb == "dyn" else kb) in (*ORDERED, "dyn")
    if ka in NUMERIC and kb in NUMERIC:
        return True
    return ka == kb and ka in ORDERED


def equatable(a: StaticType, b: StaticType) -> bool:
    """``_==_(A, A)``: both sides must have one type (``dyn`` matches anything; ``null`` is lenient)."""
    return assignable(a, b) or "null_type" in (kind(a), kind(b))
