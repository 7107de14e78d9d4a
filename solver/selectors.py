"""CEL device selectors for the compiler: compiled once per expression, evaluated in batches.

``gpupolicy.policy.cel``'s ``Program.evaluate_devices`` caches results by the part of the device an expression
reads, so identical GPUs cost one evaluation. Kubernetes semantics: false excludes the device; a run-time error is
not false: the device is set aside with its error (:class:`Filtered`), and it is the allocator's business whether
it ever evaluates that device (``gpupolicy.solver.firstfit``; docs/solver.md, "CEL run-time errors").
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.errors import Location


@dataclass(frozen=True)
class DeviceError:
    """A selector failed at run time on one device."""

    code: str  # cel_runtime_error, cel_type_error, cel_cost_exceeded
    message: str


@dataclass
class Filtered:
    kept: list[int]
    failed: dict[int, DeviceError]


@dataclass
class Selector:
    expression: str
    location: Location
    program: Any

    def filter(self, indices: Sequence[int], views: Sequence[DeviceView]) -> Filtered:
        """The indices whose device matches, and those where the selector failed (never matching)."""
        results = self.program.evaluate_devices([views[i] for i in indices])
        out = Filtered([], {})
        for i, result in zip(indices, results):
            if result is True:
                out.kept.append(i)
            elif result is not False:
                code = str(getattr(result, "code", "cel_runtime_error"))
                out.failed[i] = DeviceError(code, str(getattr(result, "message", result)))
        return out


@dataclass
class SelectorCache:
    """Compiled programs by expression (the location is kept per use, for messages)."""

    programs: dict[str, Any] = field(default_factory=dict)

    def get(self, expression: str, location: Location) -> Selector:
        program = self.programs.get(expression)
        if program is None:
            cel = importlib.import_module("gpupolicy.policy.cel")
            program = cel.compile_expression(expression, location, env="selector")
            self.programs[expression] = program
        return Selector(expression, location, program)
