"""Kubernetes-compatible CEL for device selectors: compile once, evaluate many devices fast.

This is the only module that imports cel-python (``celpy``); we use its grammar and its string
literal decoding. Checking, cost estimation and evaluation are our own (``policy.cel_*``):
cel-python 0.5.0 has no type checker, no cost estimator, no ``cel.bind``, no Kubernetes
quantity/semver libraries, and treats runtime errors in ways that differ from cel-go.

Environments (``env=``):

* ``"selector"``: ``device`` (``driver``, ``attributes[domain][id]``, ``capacity[domain][id]``,
  ``allowMultipleAllocations``), as in DeviceClass and ResourceClaim selectors.
* ``"admission"``: ``device`` plus ``claim`` (``namespace``, ``name``, ``labels``,
  ``annotations``) and ``request`` (``name``, ``deviceClassName``, ``count``, ``allocationMode``,
  ``capacity`` as a map of quantities).

Thread safety: a :class:`Program` holds no per-evaluation state (each evaluation gets its own
variable map and cost meter), so it can be used from several threads at once. The result caches
are plain dicts updated by single item assignments, which are atomic under the GIL (a lock
guards only the clearing of a full cache); two threads may at worst both compute a result that
is missing, and store the same value.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
from celpy.celparser import CELParser
from celpy.evaluation import celbytes, celstr
from lark import Lark

from gpupolicy.policy.cel.ast import Node
from gpupolicy.policy.cel.checker.check import Compiler
from gpupolicy.policy.cel.core import (
    CompileIssue,
    CostExceeded,
    EvalError,
    Meter,
    StaticType,
    Typed,
    kind,
    map_of,
    type_name,
)
from gpupolicy.policy.cel.projection import KeyFn, Projection, analyze, key_function
from gpupolicy.policy.cel.runtime.values import runtime_type
from gpupolicy.policy.cel.syntax.converter import Converter, ParseIssue
from gpupolicy.policy.device import DeviceView, result_cache
from gpupolicy.policy.errors import DiagnosticError, Location
from gpupolicy.policy.quantity import Quantity

EXPRESSION_MAX_BYTES = 10 * 1024
COST_LIMIT = 1_000_000
RUNTIME_COST_LIMIT = 1_000_000
_CACHE_LIMIT = 200_000

_ATTRS: StaticType = map_of("string", map_of("string", "dyn"))
_CAPS: StaticType = map_of("string", map_of("string", "quantity"))
OBJECTS: dict[str, dict[str, StaticType]] = {
    "device": {"driver": "string", "attributes": _ATTRS, "capacity": _CAPS, "allowMultipleAllocations": "bool"},
    "claim": {
        "namespace": "string",
        "name": "string",
        "labels": map_of("string", "string"),
        "annotations": map_of("string", "string"),
    },
    "request": {
        "name": "string",
        "deviceClassName": "string",
        "count": "int",
        "allocationMode": "string",
        "capacity": map_of("string", "quantity"),
    },
}
ENVIRONMENTS: dict[str, dict[str, StaticType]] = {
    "selector": {"device": ("object", "device")},
    "admission": {"device": ("object", "device"), "claim": ("object", "claim"), "request": ("object", "request")},
}


class CelRuntimeError(Exception):
    """Evaluating an expression failed.

    ``code`` is ``cel_runtime_error``, ``cel_cost_exceeded`` or ``cel_type_error``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (CelRuntimeError, (self.code, self.message))


class DomainMap(dict[str, Mapping[str, object]]):
    """``device.attributes`` / ``device.capacity``: an unknown domain reads as an empty map."""

    _EMPTY: Mapping[str, object] = {}

    def __missing__(self, domain: str) -> Mapping[str, object]:
        return self._EMPTY

    def __contains__(self, domain: object) -> bool:
        return isinstance(domain, str)  # like Kubernetes, every domain "exists" (possibly empty)


def device_value(device: DeviceView) -> dict[str, object]:
    """The ``device`` variable for one device; built once per device object and reused
    (CEL cannot modify values, and ``DeviceView`` is frozen)."""
    value: dict[str, object] | None = device.__dict__.get("_cel_value")
    if value is None:
        value = {
            "driver": device.driver,
            "attributes": DomainMap(device.attributes),
            "capacity": DomainMap(device.capacity),
            "allowMultipleAllocations": device.allow_multiple_allocations,
        }
        device.__dict__["_cel_value"] = value
    return value


# --- compiling ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Core:
    """The location-independent result of compiling one expression in one environment."""

    expression: str
    env: str
    typed: Typed
    projection: Projection
    key: KeyFn
    results: dict[Hashable, bool | CelRuntimeError]
    lock: threading.Lock


_parser_lock = threading.Lock()
_OPTIONAL_SYNTAX = """
member         : member_dot | member_dot_arg | member_index | member_object | primary
               | member_dot_opt | member_index_opt
member_dot_opt : member "." "?" IDENT
member_index_opt : member "[" "?" expr "]"
"""


@functools.cache
def _lark() -> Lark:
    """cel-python's grammar plus CEL's optional selection syntax (``a.?b``, ``a[?k]``)."""
    grammar = (Path(celpy.__file__).parent / "cel.lark").read_text()
    original = "member         : member_dot | member_dot_arg | member_index | member_object | primary\n"
    if original not in grammar:  # a different cel-python: use its grammar unchanged
        return Lark(grammar, **_LARK_OPTIONS)
    return Lark(grammar.replace(original, _OPTIONAL_SYNTAX.lstrip("\n")), **_LARK_OPTIONS)


_LARK_OPTIONS: dict[str, Any] = {
    "parser": "lalr",
    "start": "expr",
    "g_regex_flags": re.M,
    "lexer_callbacks": {"IDENT": CELParser.ambiguous_literals},
    "propagate_positions": True,
    "maybe_placeholders": False,
    "priority": "invert",
}


def _parse(expression: str) -> Node:
    with _parser_lock:  # one parse at a time through the shared parser
        try:
            tree = _lark().parse(expression)
        except Exception as err:  # lark raises several exception families
            line = getattr(err, "line", None)
            column = getattr(err, "column", None)
            pos = _offset(expression, line, column)
            raise CompileIssue("cel_compile_error", _syntax_message(err), pos) from None
    try:
        return Converter(lambda t: str(celstr(t)), lambda t: bytes(celbytes(t))).convert(tree)
    except ParseIssue as issue:
        raise CompileIssue("cel_compile_error", issue.message, issue.pos) from None
    except (ValueError, OverflowError) as err:  # malformed escapes in literals
        raise CompileIssue("cel_compile_error", f"invalid literal: {err}", 0) from None


def _syntax_message(err: BaseException) -> str:
    cause = err
    token = getattr(cause, "token", None)
    if token is not None and getattr(token, "type", "") == "$END":
        return "syntax error: unexpected end of expression"
    if token is not None:
        return f"syntax error: unexpected {str(token)!r}"
    char = getattr(cause, "char", None)
    if char is not None:
        return f"syntax error: unexpected character {char!r}"
    return "syntax error: unexpected end of expression"


def _offset(expression: str, line: object, column: object) -> int:
    if not isinstance(line, int) or not isinstance(column, int) or line < 1:
        return 0
    lines = expression.split("\n")
    return sum(len(part) + 1 for part in lines[: line - 1]) + max(column - 1, 0)


@functools.lru_cache(maxsize=4096)
def _compile_core(expression: str, env: str) -> _Core:
    if len(expression.encode()) > EXPRESSION_MAX_BYTES:
        raise CompileIssue(
            "cel_expression_too_long",
            f"expression is {len(expression.encode())} bytes, more than the limit of {EXPRESSION_MAX_BYTES}",
            0,
        )
    ast = _parse(expression)
    typed = Compiler(ENVIRONMENTS[env], OBJECTS).compile(ast)
    if kind(typed.type) not in ("bool", "dyn"):
        raise CompileIssue("cel_type_error", f"must evaluate to bool, not {type_name(typed.type)}", 0)
    if typed.cost > COST_LIMIT:
        raise CompileIssue(
            "cel_cost_exceeded",
            f"estimated cost {typed.cost} exceeds the limit of {COST_LIMIT}; "
            "reduce nested comprehensions over large lists",
            0,
        )
    projection = analyze(ast)
    return _Core(expression, env, typed, projection, key_function(projection), {}, threading.Lock())


def compile_expression(expression: str, location: Location | None = None, *, env: str = "selector") -> Program:
    """Check and compile a CEL expression; raise :class:`DiagnosticError` if it is not usable.

    ``location`` points at the expression in the user's file; diagnostics inside the expression
    add the offset of the offending token (exact for single-line expressions).
    """
    if env not in ENVIRONMENTS:
        raise ValueError(f"unknown CEL environment {env!r}; use one of {sorted(ENVIRONMENTS)}")
    if not isinstance(expression, str):
        raise DiagnosticError.single("cel_compile_error", "expression must be a string", location)
    try:
        core = _compile_core(expression, env)
    except CompileIssue as issue:
        raise DiagnosticError.single(issue.code, issue.message, locate(location, expression, issue.pos)) from None
    except RecursionError:
        raise DiagnosticError.single("cel_compile_error", "expression is nested too deeply", location) from None
    return Program(core, location)


def locate(location: Location | None, expression: str, pos: int) -> Location:
    """The file position of character ``pos`` of an expression that starts at ``location``."""
    base = location or Location()
    if base.line <= 0 or pos <= 0:
        return base
    before = expression[:pos]
    newlines = before.count("\n")
    if newlines == 0:
        return Location(base.file, base.line, base.col + pos, base.path)
    column = pos - before.rfind("\n")
    return Location(base.file, base.line + newlines, column, base.path)


# --- evaluating ---------------------------------------------------------------------------


class Program:
    """A compiled expression. Immutable apart from its result caches; safe to share between threads."""

    def __init__(self, core: _Core, location: Location | None) -> None:
        self._core = core
        self.location = location

    @property
    def expression(self) -> str:
        return self._core.expression

    @property
    def env(self) -> str:
        return self._core.env

    @property
    def cost_estimate(self) -> int:
        return self._core.typed.cost

    @property
    def projection(self) -> Projection:
        """What the expression reads from ``device`` (used for result caching)."""
        return self._core.projection

    def evaluate(
        self,
        device: DeviceView | None = None,
        *,
        claim: Mapping[str, object] | None = None,
        request: Mapping[str, object] | None = None,
    ) -> bool:
        """Evaluate without caching; raise :class:`CelRuntimeError` on a run-time error."""
        result = self._run(self._variables(device, claim, request))
        if isinstance(result, CelRuntimeError):
            raise result
        return result

    def _variables(
        self, device: DeviceView | None, claim: Mapping[str, object] | None, request: Mapping[str, object] | None
    ) -> dict[str, object]:
        variables: dict[str, object] = {"device": device_value(device or DeviceView(driver=""))}
        if self._core.env == "admission":
            variables["claim"] = _claim_value(claim or {})
            variables["request"] = _request_value(request or {})
        return variables

    def _run(self, variables: dict[str, object]) -> bool | CelRuntimeError:
        try:
            value = self._core.typed.fn(variables, Meter(RUNTIME_COST_LIMIT))
        except EvalError as err:
            return CelRuntimeError("cel_runtime_error", str(err))
        except CostExceeded as err:
            return CelRuntimeError("cel_cost_exceeded", str(err))
        except RecursionError:
            return CelRuntimeError("cel_runtime_error", "evaluation nested too deeply")
        except (ArithmeticError, ValueError, TypeError) as err:
            return CelRuntimeError("cel_runtime_error", f"no such overload ({err})")
        if not isinstance(value, bool):
            return CelRuntimeError("cel_type_error", f"must evaluate to bool, not {runtime_type(value)}")
        return value

    def evaluate_devices(
        self,
        devices: Sequence[DeviceView],
        *,
        claim: Mapping[str, object] | None = None,
        request: Mapping[str, object] | None = None,
    ) -> list[bool | CelRuntimeError]:
        """One result per device; errors are returned, not raised. Cached by device projection."""
        core = self._core
        if core.env == "admission":
            context = (_freeze(claim or {}), _freeze(request or {}))
            return [self._cached((context, core.key(d)), d, claim, request) for d in devices]
        try:  # fast path: every device has been through this program before
            out: list[bool | CelRuntimeError | None] = [d.__dict__["_cel_results"].get(core) for d in devices]
        except KeyError:
            out = [None] * len(devices)
        if None in out:
            self._fill(devices, out)
        return out  # type: ignore[return-value]

    def _fill(self, devices: Sequence[DeviceView], out: list[bool | CelRuntimeError | None]) -> None:
        """Compute the missing results: by projection key, evaluating each new key once."""
        core = self._core
        keyfn, results = core.key, core.results
        for i, device in enumerate(devices):
            if out[i] is not None:
                continue
            key = keyfn(device)
            result = results.get(key)
            if result is None:
                result = self._cached(key, device, None, None)
            result_cache(device)[core] = result
            out[i] = result

    def _cached(
        self,
        key: Hashable,
        device: DeviceView,
        claim: Mapping[str, object] | None,
        request: Mapping[str, object] | None,
    ) -> bool | CelRuntimeError:
        results = self._core.results
        result = results.get(key)
        if result is None:
            result = self._run(self._variables(device, claim, request))
            with self._core.lock:
                if len(results) >= _CACHE_LIMIT:
                    results.clear()
                results[key] = result
        return result

    def __repr__(self) -> str:
        return f"Program({self._core.expression!r}, env={self._core.env!r})"


def _claim_value(claim: Mapping[str, object]) -> dict[str, object]:
    return {
        "namespace": str(claim.get("namespace", "")),
        "name": str(claim.get("name", "")),
        "labels": dict(claim.get("labels") or {}),  # type: ignore[call-overload]
        "annotations": dict(claim.get("annotations") or {}),  # type: ignore[call-overload]
    }


def _request_value(request: Mapping[str, object]) -> dict[str, object]:
    count = request.get("count", 1)
    raw = request.get("capacity")
    capacity: Mapping[object, object] = raw if isinstance(raw, Mapping) else {}
    return {
        "name": str(request.get("name", "")),
        "deviceClassName": str(request.get("deviceClassName", "")),
        "count": count if isinstance(count, int) else 1,
        "allocationMode": str(request.get("allocationMode", "ExactCount")),
        "capacity": {str(k): v if isinstance(v, Quantity) else Quantity.parse(str(v)) for k, v in capacity.items()},
    }


def _freeze(value: object) -> Hashable:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return (value.__class__.__name__, value)


__all__ = [
    "COST_LIMIT",
    "EXPRESSION_MAX_BYTES",
    "RUNTIME_COST_LIMIT",
    "CelRuntimeError",
    "Program",
    "compile_expression",
    "device_value",
]
