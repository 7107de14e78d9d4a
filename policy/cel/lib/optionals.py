"""Static result types of the optional library's functions (``cel.OptionalTypes``), which depend on the arguments.

``optional.of(x)`` is ``optional_type(T)`` for ``x: T``; ``o.value()`` is ``T``; ``o.orValue(d)`` and ``o.or(p)``
need the two types to agree. ``optional.none()`` is ``optional_type(dyn)`` here, where cel-go leaves ``T`` free:
so ``dyn`` inside an optional gives way to the other side (``optional.none().orValue(true)`` is a ``bool``); an
attribute read with ``.?`` is an optional of the attribute type (Kubernetes' "unknown type"), so its ``value()``
may be a selector's result, while ``optional.none().value()`` is ``dyn`` and may not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gpupolicy.policy.cel.core import ANY, DYN, StaticType, assignable, join, kind, optional_inner, optional_of


def _inner(t: StaticType) -> StaticType:
    return optional_inner(t) if kind(t) == "optional" else DYN


def _value(types: Sequence[StaticType]) -> StaticType:
    return _inner(types[0])  # optional.none().value() is dyn (refused as a selector's result, as in Kubernetes)


def _pick(a: StaticType, b: StaticType) -> StaticType | None:
    """The common type of an optional's value and another value; a ``dyn`` (free) side takes the other's."""
    if a == DYN:
        return b
    if b == DYN:
        return a
    return join(a, b) if assignable(a, b) else None


def _or_value(types: Sequence[StaticType]) -> StaticType | None:
    picked = _pick(_inner(types[0]), types[1])
    return None if picked is None else (ANY if picked == DYN else picked)


def _or(types: Sequence[StaticType]) -> StaticType | None:
    picked = _pick(_inner(types[0]), _inner(types[1]))
    return None if picked is None else optional_of(picked)


RESULT_TYPES: dict[str, Callable[[Sequence[StaticType]], StaticType | None]] = {
    "optional.of": lambda types: optional_of(types[0]),
    "optional.ofNonZeroValue": lambda types: optional_of(types[0]),
    "optional.none": lambda types: optional_of(DYN),
    "value": _value,
    "orValue": _or_value,
    "or": _or,
}
