"""Shared machinery for API-server style validation: a collector of located diagnostics.

Codes used across ``gpupolicy.policy.k8s``:

- ``invalid_name``: a name or key has the wrong format or length.
- ``too_many``: a list or map has more entries than the API server allows.
- ``too_long``: a string or encoded value is longer than allowed.
- ``missing_field``: a required field is absent or empty, or none of a one-of group is set.
- ``mutually_exclusive``: more than one field of a one-of group is set.
- ``duplicate_name``: two entries of a list share a name or key that must be unique.
- ``unknown_reference``: a reference (request name, allocated device) names nothing that exists.
- ``invalid_value``: any other value the API server rejects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Sequence, Sized
from typing import Any

from gpupolicy.policy.errors import Diagnostic
from gpupolicy.policy.yamlsrc import SourceDoc

Path = tuple[str | int, ...]


class Checker:
    """Collects diagnostics located in one document."""

    def __init__(self, doc: SourceDoc) -> None:
        self.doc = doc
        self.diagnostics: list[Diagnostic] = []

    def add(self, code: str, message: str, path: Sequence[str | int]) -> None:
        self.diagnostics.append(Diagnostic(code, message, self.doc.locate(path)))

    def name(self, problems: Iterable[str], path: Path, what: str, value: str) -> bool:
        """Report each format problem of ``value``; True when it was valid."""
        found = list(problems)
        for problem in found:
            self.add("invalid_name", f"{what} {value!r}: {problem}", path)
        return not found

    def required(self, value: object, path: Path, what: str) -> bool:
        if value is None or value == "" or value == [] or value == {}:
            self.add("missing_field", f"{what} is required", path)
            return False
        return True

    def too_many(self, items: Sized | None, limit: int, path: Path, what: str) -> bool:
        """True (and reported) when ``items`` has more than ``limit`` entries."""
        if items is not None and len(items) > limit:
            self.add("too_many", f"{what}: {len(items)} entries, at most {limit} allowed", path)
            return True
        return False

    def too_long(self, text: str, limit: int, path: Path, what: str) -> bool:
        if len(text.encode("utf-8")) > limit:
            self.add("too_long", f"{what} must be no more than {limit} bytes", path)
            return True
        return False

    def unique(self, keys: Iterable[Hashable], path: Path, what: str, code: str = "duplicate_name") -> None:
        seen: set[Hashable] = set()
        for i, key in enumerate(keys):
            if key in seen:
                self.add(code, f"duplicate {what} {key!s}", (*path, i))
            seen.add(key)

    def each(self, items: Sequence[Any] | None, path: Path, check: Callable[[Any, Path], None]) -> None:
        for i, item in enumerate(items or ()):
            check(item, (*path, i))

    def json_object(self, value: Any, limit: int, path: Path, what: str) -> None:
        """Raw JSON data that must be an object of at most ``limit`` bytes (opaque parameters)."""
        if value is None:
            self.add("missing_field", f"{what} is required", path)
            return
        try:
            encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
        except (ValueError, TypeError, RecursionError) as err:
            self.add("invalid_value", f"{what} cannot be encoded as JSON: {err}", path)
            return
        if self.too_long(encoded, limit, path, what):
            return
        if not isinstance(value, dict):
            self.add("invalid_value", f"{what} must be a JSON object, not {type(value).__name__}", path)
