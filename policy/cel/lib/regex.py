"""Regular expressions with RE2 semantics (linear time, no backreferences or lookarounds).

Kubernetes evaluates ``matches`` with Go's RE2 engine; we use Google's RE2 through the
``google-re2`` package (a dependency of cel-python), so a pattern that would backtrack
catastrophically in Python's ``re`` runs in linear time here, and patterns RE2 refuses are
refused here too. Compiled patterns are cached.
"""

from __future__ import annotations

import functools
from typing import Any

import re2  # type: ignore[import-untyped]

from gpupolicy.policy.cel.core import EvalError

MAX_PATTERN = 4096
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.max_mem = 8 << 20


class RegexError(ValueError):
    """The pattern is not valid RE2 syntax."""


@functools.lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> Any:
    if len(pattern) > MAX_PATTERN:
        raise RegexError(f"regular expression longer than {MAX_PATTERN} characters")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as err:
        detail = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else str(err)
        raise RegexError(f"invalid regular expression {pattern!r}: {detail}") from None


def _runtime_regex(pattern: str) -> Any:
    try:
        return compile_regex(pattern)
    except RegexError as err:
        raise EvalError(str(err)) from None


def matches(text: str, pattern: str) -> bool:
    return _runtime_regex(pattern).search(text) is not None


def find(text: str, pattern: str) -> str:
    match = _runtime_regex(pattern).search(text)
    return "" if match is None else str(match.group(0))


def find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    found = [str(m.group(0)) for m in _runtime_regex(pattern).finditer(text)]
    return found if limit < 0 else found[:limit]
