"""What every phase of the CEL package shares: static types, errors, and the compiled-node type.

Static types are small values: a name (``"int"``, ``"string"``, ``"quantity"``, ``"dyn"`` ...),
``("list", elem)``, ``("map", key, value)`` or ``("object", name)`` for the declared variables.
A checked node is a :class:`Typed`: its static type and the closure ``fn(vars, meter)`` that evaluates
it (the static cost estimate is a separate pass, ``checker/cost.py``); the :class:`Meter` charges the
run-time cost.
Checking problems are :class:`CompileIssue`; run-time errors are :class:`EvalError` (which
``&&``, ``||`` and the macros may absorb) and :class:`CostExceeded` (never absorbed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Protocol

from gpupolicy.policy.cel.ast import Node

# --- static types -------------------------------------------------------------------------

StaticType = str | tuple["StaticType", ...]
DYN: StaticType = "dyn"
# The type of an attribute value (Kubernetes declares it as cel-go's ``any``): it checks like ``dyn``, but a
# selector may evaluate to it, while a selector whose type is ``dyn`` is refused, as the API server does.
ANY: StaticType = "any"
# A type parameter cel-go leaves open (the element type of ``[]``, the key and value types of ``{}``, the value of
# ``optional.none()``): it checks like ``dyn``, but meeting another type it becomes that type (``[] + [1.0]`` is a
# list(double), ``c ? "a" : x`` with ``x`` ranging over ``[]`` a string), as cel-go binds the parameter.
FREE = "_free"
_WILD = ("dyn", "any", "_free")

TYPE_NAMES = ("bool", "int", "uint", "double", "string", "bytes", "list", "map", "null_type", "type")


def list_of(elem: StaticType) -> StaticType:
    return ("list", elem)


def map_of(key: StaticType, value: StaticType) -> StaticType:
    return ("map", key, value)


def optional_of(inner: StaticType) -> StaticType:
    """``optional_type(T)``; a bare ``"optional"`` is ``optional_type(dyn)``."""
    return ("optional", inner)


def optional_inner(t: StaticType) -> StaticType:
    """``T`` of ``optional_type(T)``; ``dyn`` for anything else."""
    return t[1] if isinstance(t, tuple) and t[0] == "optional" else DYN


def kind(t: StaticType) -> str:
    """``"list"`` for ``("list", "int")``; the name itself for simple types (``any`` checks as ``dyn``)."""
    if isinstance(t, str):
        return "dyn" if t in ("any", "_free") else t
    return str(t[0])


def assignable(a: StaticType, b: StaticType) -> bool:
    """Whether values of static types ``a`` and ``b`` may meet where CEL wants one type
    (``_==_(A, A)``, ``@in(A, list(A))``, homogeneous literals); ``dyn`` matches anything."""
    if a in _WILD or b in _WILD:
        return True
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and a[0] == b[0] and all(assignable(x, y) for x, y in zip(a[1:], b[1:]))
    return a == b


def join(a: StaticType, b: StaticType) -> StaticType:
    """The common type of two assignable types (the less specific one, as cel-go's ``mostGeneral``); an open
    parameter takes the other type."""
    if a == FREE:
        return b
    if b == FREE:
        return a
    if a in _WILD:
        return a
    if b in _WILD:
        return b
    if isinstance(a, tuple) and isinstance(b, tuple):
        return (a[0], *(join(x, y) for x, y in zip(a[1:], b[1:])))
    return a


def type_name(t: StaticType) -> str:
    if isinstance(t, str):
        return "dyn" if t == "any" else t
    if t[0] == "object":
        return str(t[1])
    if t[0] == "optional":
        return f"optional_type({type_name(t[1])})"
    return f"{t[0]}({', '.join(type_name(p) for p in t[1:])})"


# --- errors -------------------------------------------------------------------------------


class EvalError(Exception):
    """A CEL run-time error (``no such key: x``). ``&&``, ``||`` and macros may absorb it."""


class CostExceeded(Exception):
    """The run-time cost budget is spent. Never absorbed."""


class CompileIssue(Exception):
    """A problem found while checking an expression: a diagnostic code, a message, an offset."""

    def __init__(self, code: str, message: str, pos: int) -> None:
        super().__init__(message)
        self.code, self.message, self.pos = code, message, pos


def no_overload(name: str, pos: int, *types: StaticType) -> CompileIssue:
    applied = ", ".join(type_name(t) for t in types)
    return CompileIssue("cel_type_error", f"found no matching overload for '{name}' applied to '({applied})'", pos)


def undeclared(name: str, pos: int) -> CompileIssue:
    return CompileIssue("cel_undeclared_reference", f"undeclared reference to '{name}'", pos)


# --- checked nodes ------------------------------------------------------------------------

Vars = dict[str, object]


class Meter:
    """Counts run-time cost units for one evaluation."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.used = 0
        self.limit = limit

    def charge(self, units: int) -> None:
        self.used += units
        if self.used > self.limit:
            raise CostExceeded(f"operation cancelled: actual cost limit exceeded ({self.limit})")


Fn = Callable[[Vars, Meter], object]


@dataclass(frozen=True, slots=True)
class Typed:
    fn: Fn
    type: StaticType
    _: KW_ONLY
    const: bool = False
    path: tuple[Fn, tuple[str, ...]] | None = None  # a chain of constant-key lookups, for fusing


ObjectFields = Mapping[str, Mapping[str, StaticType]]


class Checker(Protocol):
    """What the call and comprehension checkers use of the checker that walks the tree
    (:class:`gpupolicy.policy.cel.checker.check.Compiler`)."""

    heterogeneous_ok: set[int]  # list and map literals exempt from homogeneity (format's arguments)

    def compile(self, node: Node) -> Typed: ...

    def is_variable(self, name: str) -> bool: ...

    def with_vars(self, bindings: list[tuple[str, StaticType]], body: Node) -> Typed: ...
