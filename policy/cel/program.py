"""Compile an expression once and evaluate it over many devices: :func:`compile_expression`, :class:`Program`.

Compiling parses (:mod:`.syntax.parser`), checks and builds closures (:mod:`.checker`), and finds
what the expression reads from ``device`` (:mod:`.projection`), once per expression and
environment. Evaluating caches results by that projection, so identical GPUs cost one evaluation.

Thread safety: a :class:`Program` holds no per-evaluation state (each evaluation gets its own
variable map and cost meter), so it can be used from several threads at once. The result caches
are plain dicts updated by single item assignments, which are atomic under the GIL (a lock
guards only the clearing of a full cache); two threads may at worst both compute a result that
is missing, and store the same value.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gpupolicy.policy.cel.ast import Node
from gpupolicy.policy.cel.checker.check import Compiler
from gpupolicy.policy.cel.checker.cost import estimate as estimate_cost_range
from gpupolicy.policy.cel.core import (
    ANY,
    CompileIssue,
    CostExceeded,
    EvalError,
    Meter,
    StaticType,
    Typed,
    type_name,
)
from gpupolicy.policy.cel.environments import ENVIRONMENTS, OBJECTS, claim_value, device_value, request_value
from gpupolicy.policy.cel.projection import KeyFn, Projection, analyze, key_function
from gpupolicy.policy.cel.runtime.values import runtime_type
from gpupolicy.policy.cel.syntax.parser import parse
from gpupolicy.policy.device import DeviceView, result_cache
from gpupolicy.policy.errors import DiagnosticError, Location

EXPRESSION_MAX_BYTES = 10 * 1024
COST_LIMIT = 1_000_000
RUNTIME_COST_LIMIT = 1_000_000
UNBOUNDED_COST = 1 << 60  # estimates this large come from a size cel-go cannot bound (2**64 saturated)
_CACHE_LIMIT = 200_000


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


# --- compiling ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Core:
    """The location-independent result of compiling one expression in one environment."""

    expression: str
    env: str
    typed: Typed
    cost: int  # the API server's estimate of the worst-case cost (cel-go's checker.Cost, max)
    projection: Projection
    key: KeyFn
    results: dict[Hashable, bool | CelRuntimeError]
    lock: threading.Lock


# cel-go's parser limits (syntax/limits.py), which we follow, let an expression nest about 1,500 syntax nodes
# deep; checking and evaluating one takes about five Python frames per node (tests/policy/cel/test_nesting.py).
PYTHON_RECURSION_LIMIT = 10_000
if sys.getrecursionlimit() < PYTHON_RECURSION_LIMIT:
    sys.setrecursionlimit(PYTHON_RECURSION_LIMIT)


def _check(expression: str, env: str) -> tuple[Node, Typed, dict[int, StaticType]]:
    """Parse and type-check; the checked tree, its root and the static type of every node."""
    try:
        size = len(expression.encode())
    except UnicodeEncodeError as err:  # a lone surrogate: undecodable bytes of a command line, say
        raise CompileIssue("cel_compile_error", "expression is not valid UTF-8 text", err.start) from None
    if size > EXPRESSION_MAX_BYTES:
        raise CompileIssue(
            "cel_expression_too_long", f"expression is {size} bytes, more than the limit of {EXPRESSION_MAX_BYTES}", 0
        )
    ast = parse(expression)
    compiler = Compiler(ENVIRONMENTS[env], OBJECTS)
    typed = compiler.compile(ast)
    if typed.type not in ("bool", ANY):  # Kubernetes: exactly bool or the attribute type; dyn is refused
        raise CompileIssue(
            "cel_type_error", f"must evaluate to bool or the unknown type, not {type_name(typed.type)}", 0
        )
    return ast, typed, compiler.types


def estimate_cost(expression: str, env: str = "selector") -> int:
    """The API server's estimate of the worst-case cost of an expression (cel-go's ``checker.Cost`` with
    Kubernetes' estimators and the declared sizes of ``device``): the number it compares with the limit
    (:data:`COST_LIMIT`). ``2**64 - 1`` or close to it where a size is unbounded. Raises
    :class:`DiagnosticError` if the expression does not compile for another reason."""
    if env not in ENVIRONMENTS:
        raise ValueError(f"unknown CEL environment {env!r}; use one of {sorted(ENVIRONMENTS)}")
    try:
        ast, _, types = _check(expression, env)
    except CompileIssue as issue:
        raise DiagnosticError.single(issue.code, issue.message, None) from None
    return estimate_cost_range(ast, types)[1]


@functools.lru_cache(maxsize=4096)
def _compile_core(expression: str, env: str) -> _Core:
    ast, typed, types = _check(expression, env)
    cost = estimate_cost_range(ast, types)[1]
    if cost > COST_LIMIT:
        raise CompileIssue("cel_cost_exceeded", cost_message(cost), 0)
    projection = analyze(ast)
    return _Core(expression, env, typed, cost, projection, key_function(projection), {}, threading.Lock())


def cost_message(cost: int) -> str:
    shown = "unbounded" if cost >= UNBOUNDED_COST else str(cost)
    return (
        f"estimated cost {shown} exceeds the limit of {COST_LIMIT} (the API server refuses it as too complex); "
        "bound the sizes it works on (a string compared or searched whose size is unknown, such as type(...) "
        "or a quantity compared with !=, is unbounded) or reduce nested comprehensions"
    )


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
        return self._core.cost

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
            variables["claim"] = claim_value(claim or {})
            variables["request"] = request_value(request or {})
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
    "estimate_cost",
]
