"""CEL device selectors for the compiler: compiled once per expression, evaluated in batches.

``gpupolicy.policy.cel``'s ``Program.evaluate_devices`` caches results by the part of the device an expression
reads, so identical GPUs cost one evaluation. Kubernetes semantics: false excludes the device; a
run-time error is not false but fails the claim that uses the selector, with the error.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.errors import Location


class SelectorFailure(Exception):
    """A selector failed at run time on a device (the claim fails with this message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Selector:
    expression: str
    location: Location
    program: Any

    def filter(self, indices: Sequence[int], views: Sequence[DeviceView]) -> list[int]:
        """The indices whose device matches; the first run-time error (in device order) is raised."""
        results = self.program.evaluate_devices([views[i] for i in indices])
        kept = []
        for i, result in zip(indices, results):
            if result is True:
                kept.append(i)
            elif result is not False:
                raise SelectorFailure(
                    str(getattr(result, "code", "cel_runtime_error")), str(getattr(result, "message", result))
                )
        return kept


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
