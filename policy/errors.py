"""User-facing errors: a stable code, a message and a location.

Every error a user can cause (bad YAML, an unknown field, a CEL expression that does not
compile, a claim that cannot be placed) is reported as a :class:`Diagnostic`. They are
collected rather than raised one at a time, sorted by location and printed all together as
``file:line:col: code: message (at key.path)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PathElement = str | int
KeyPath = tuple[PathElement, ...]


def format_path(path: Sequence[PathElement]) -> str:
    """Render a key path the way kubectl explains fields: ``spec.devices.requests[0].name``."""
    out = ""
    for element in path:
        if isinstance(element, int):
            out += f"[{element}]"
        elif out:
            out += f".{element}"
        else:
            out = str(element)
    return out


@dataclass(frozen=True, order=True)
class Location:
    """Where something is in a user's file. ``line``/``col`` are 1-based; 0 means unknown."""

    file: str = "<input>"
    line: int = 0
    col: int = 0
    path: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def with_path(self, path: str) -> Location:
        return Location(self.file, self.line, self.col, path)


@dataclass(frozen=True)
class Diagnostic:
    """One problem in the user's input."""

    code: str
    message: str
    location: Location = field(default_factory=Location)

    def sort_key(self) -> tuple[str, int, int, str, str]:
        loc = self.location
        return (loc.file, loc.line, loc.col, self.code, self.message)

    def __str__(self) -> str:
        text = f"{self.location}: {self.code}: {self.message}"
        if self.location.path:
            text += f" (at {self.location.path})"
        return text

    def to_json(self) -> dict[str, object]:
        loc = self.location
        return {
            "code": self.code,
            "message": self.message,
            "file": loc.file,
            "line": loc.line,
            "col": loc.col,
            "path": loc.path,
        }


def sorted_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sort by file, line, column; drop exact duplicates."""
    unique = {(d.code, d.message, d.location): d for d in diagnostics}
    return sorted(unique.values(), key=Diagnostic.sort_key)


class DiagnosticError(Exception):
    """Raised when input is invalid; carries every diagnostic found, sorted."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = sorted_diagnostics(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @classmethod
    def single(cls, code: str, message: str, location: Location | None = None) -> DiagnosticError:
        return cls([Diagnostic(code, message, location or Location())])
