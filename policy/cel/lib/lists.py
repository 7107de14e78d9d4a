"""cel-go's ``ext.Lists`` at version 3 (in Kubernetes since 1.34) and the list functions of the optional library.

``lists.range(n)``, ``l.slice(start, end)``, ``l.flatten()`` / ``l.flatten(depth)``, ``l.sort()``, ``l.reverse()``,
``l.distinct()``, ``l.sortBy(x, key)`` (a macro: ``@sortByAssociatedKeys`` of the list and its mapped keys),
and from ``cel.OptionalTypes``: ``l.first()``, ``l.last()``, ``optional.unwrap(l)``, ``l.unwrapOpt()``.
Errors are cel-go's, word for word. Entries are ``(params, result, impl)``, registered by :mod:`.functions`;
:data:`RESULT_TYPES` gives the static result that depends on the receiver's type (``list(T)`` stays ``list(T)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gpupolicy.policy.cel.core import DYN, EvalError, StaticType, kind, optional_inner, optional_of
from gpupolicy.policy.cel.runtime.gosort import sort_indices
from gpupolicy.policy.cel.runtime.time import Duration, Timestamp
from gpupolicy.policy.cel.runtime.values import MAX_LIST, OptionalValue, Uint, compare, runtime_type
from gpupolicy.policy.cel.runtime.values import _equal as equal

LIST: StaticType = ("list", DYN)
INT, OPT = "int", "optional"
Decl = tuple[tuple[StaticType, ...], StaticType, Callable[..., object]]

# ext.Lists' comparableTypes: what sort() and sortBy() keys may be
COMPARABLE = frozenset({"int", "uint", "double", "bool", "duration", "timestamp", "string", "bytes"})
_COMPARABLE_VALUES = (int, float, str, bytes, Duration, Timestamp)


MAX_RANGE = 1_000_000  # ext.Lists' defaultMaxRangeSize


def lists_range(n: int) -> list[object]:
    if n < 0:
        raise EvalError(f"lists.range: size must be non-negative, got {n}")
    if n > MAX_RANGE:
        raise EvalError(f"lists.range: size {n} exceeds maximum allowed ({MAX_RANGE})")
    return list(range(n))


def list_slice(items: Sequence[object], start: int, end: int) -> list[object]:
    if start < 0 or end < 0:
        raise EvalError(f"cannot slice({start}, {end}), negative indexes not supported")
    if start > end:
        raise EvalError(f"cannot slice({start}, {end}), start index must be less than or equal to end index")
    if len(items) < end:
        raise EvalError(f"cannot slice({start}, {end}), list is length {len(items)}")
    return list(items[start:end])


def flatten(items: Sequence[object], depth: int = 1) -> list[object]:
    if depth < 0:
        raise EvalError("level must be non-negative")
    out: list[object] = []
    for item in items:
        if isinstance(item, (list, tuple)) and depth > 0:
            out.extend(flatten(item, depth - 1))
        else:
            out.append(item)
        if len(out) > MAX_LIST:
            raise EvalError(f"list result longer than {MAX_LIST} elements")
    return out


def sort_by_keys(items: Sequence[object], keys: Sequence[object]) -> list[object]:
    """cel-go's ``sortListByAssociatedKeys``: ``items`` ordered by ``keys`` (one key per item, all one type)."""
    if len(items) != len(keys):
        raise EvalError(
            "@sortByAssociatedKeys() expected a list of the same size as the associated keys list, "
            f"but got {len(items)} and {len(keys)} elements respectively"
        )
    if not items:
        return list(items)
    first = keys[0]
    if not isinstance(first, _COMPARABLE_VALUES):
        raise EvalError("list elements must be comparable")
    kind0 = runtime_type(first)
    if any(runtime_type(k) != kind0 for k in keys):
        raise EvalError("list elements must have the same type")
    order = sort_indices(len(items), lambda i, j: compare(keys[i], keys[j]) == -1)  # Go's sort.Slice, unstable
    return [items[i] for i in order]


def sort(items: Sequence[object]) -> list[object]:
    return sort_by_keys(items, items)


def distinct(items: Sequence[object]) -> list[object]:
    """The first of each group of equal elements (``Equal`` is true: ``1`` and ``1.0`` are one element)."""
    unique: list[object] = []
    for item in items:
        if not any(equal(item, seen) is True for seen in unique):
            unique.append(item)
    return unique


def unwrap(items: Sequence[object]) -> list[object]:
    out: list[object] = []
    for item in items:
        if not isinstance(item, OptionalValue):
            raise EvalError(f"value {item} is not optional")
        if item.present:
            out.append(item.value)
    return out


GLOBAL: dict[str, list[Decl]] = {
    "lists.range": [((INT,), ("list", INT), lists_range)],
    "optional.unwrap": [((LIST,), LIST, unwrap)],
}
MEMBER: dict[str, list[Decl]] = {
    "slice": [((LIST, INT, INT), LIST, list_slice)],
    "flatten": [((LIST,), LIST, flatten), ((LIST, INT), LIST, flatten)],
    "sort": [((LIST,), LIST, sort)],
    "@sortByAssociatedKeys": [((LIST, LIST), LIST, sort_by_keys)],
    "reverse": [((LIST,), LIST, lambda items: list(reversed(items)))],
    "distinct": [((LIST,), LIST, distinct)],
    "first": [((LIST,), OPT, lambda items: OptionalValue(True, items[0]) if items else OptionalValue(False))],
    "last": [((LIST,), OPT, lambda items: OptionalValue(True, items[-1]) if items else OptionalValue(False))],
    "unwrapOpt": [((LIST,), LIST, unwrap)],
}


def _same(types: Sequence[StaticType]) -> StaticType | None:
    return types[0] if kind(types[0]) in ("list", "dyn") else None


def _elem(t: StaticType) -> StaticType:
    return t[1] if isinstance(t, tuple) and t[0] == "list" else DYN


def _sortable(types: Sequence[StaticType]) -> StaticType | None:
    """``sort`` is declared for ``list(T)`` with T comparable; ``@sortByAssociatedKeys`` for comparable keys."""
    keys = _elem(types[-1])
    return types[0] if kind(keys) in (*COMPARABLE, "dyn") else None


def _flatten(types: Sequence[StaticType]) -> StaticType | None:
    """``flatten()`` is declared for ``list(list(T))`` (giving ``list(T)``); ``flatten(int)`` for ``list(dyn)``."""
    if len(types) == 2:
        return ("list", DYN)
    inner = _elem(types[0])
    if kind(inner) == "dyn":
        return ("list", DYN)
    return inner if kind(inner) == "list" else None


SUMMABLE = frozenset({"int", "uint", "double", "duration"})
SUM_ZERO: dict[str, object] = {"uint": Uint(0), "double": 0.0, "duration": Duration(0)}  # Kubernetes' zero values


def _element_of(
    allowed: frozenset[str], result: StaticType | None = None
) -> Callable[[Sequence[StaticType]], StaticType | None]:
    """Kubernetes' lists library declares ``sum`` for lists of numbers and durations, ``min``, ``max`` and
    ``isSorted`` for lists of comparable elements: the element type is the result (``isSorted``: ``bool``)."""

    def check(types: Sequence[StaticType]) -> StaticType | None:
        elem = _elem(types[0])
        if kind(elem) not in (*allowed, "dyn"):
            return None
        return result if result is not None else (DYN if kind(elem) == "dyn" else elem)

    return check


def _unwrapped(t: StaticType) -> StaticType | None:
    """``list(optional_type(T))`` gives ``list(T)``."""
    elem = _elem(t)
    if kind(elem) == "dyn":
        return ("list", DYN)
    return ("list", optional_inner(elem)) if kind(elem) == "optional" else None


# name -> the static result for the argument types (receiver first), or None where no overload applies
RESULT_TYPES: dict[str, Callable[[Sequence[StaticType]], StaticType | None]] = {
    "slice": _same,
    "reverse": _same,
    "distinct": _same,
    "sort": _sortable,
    "@sortByAssociatedKeys": _sortable,
    "flatten": _flatten,
    "sum": _element_of(SUMMABLE),
    "min": _element_of(COMPARABLE),
    "max": _element_of(COMPARABLE),
    "isSorted": _element_of(COMPARABLE, "bool"),
    "first": lambda types: optional_of(_elem(types[0])),
    "last": lambda types: optional_of(_elem(types[0])),
    "optional.unwrap": lambda types: _unwrapped(types[0]),
    "unwrapOpt": lambda types: _unwrapped(types[0]),
}
# functions whose work grows with the list (a run-time charge of 1 + size/10, like the other list functions)
LINEAR = frozenset({"unwrapOpt", "optional.unwrap"})


def _square(n: int) -> int:
    return 2 * n * n  # sort and distinct compare every pair (ext.Lists' cost factor 2)


def charge(name: str, args: Sequence[object], result: object) -> int:
    """The run-time cost of an ext.Lists call (cel-go's trackers): the size of the list it built, the input size
    times the flatten depth, or twice the square of the input for ``sort`` and ``distinct``."""
    built = len(result) if isinstance(result, (list, tuple)) else 0
    first = args[0] if args else None
    n = len(first) if isinstance(first, (list, tuple)) else 0
    if name == "flatten":
        depth = args[1] if len(args) > 1 and isinstance(args[1], int) else 1
        return n * max(depth, 1)
    if name in ("sort", "distinct", "@sortByAssociatedKeys"):
        return _square(n)
    return built


TRACKED = frozenset({"lists.range", "slice", "flatten", "sort", "@sortByAssociatedKeys", "reverse", "distinct"})
