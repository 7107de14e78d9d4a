"""Semantic versions (semver 2.0.0), the ``version`` attribute type of DRA devices.

Parsing is strict, like the Go ``blang/semver`` ``Parse`` Kubernetes uses for ``semver()`` in
CEL: exactly ``MAJOR.MINOR.PATCH``, no leading zeros in numeric parts, optional
``-prerelease`` and ``+build``. Ordering follows semver precedence: a pre-release sorts
before its release, numeric identifiers compare numerically and before alphanumeric ones,
and build metadata is ignored (so ``1.0.0+a == 1.0.0+b``).
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

_NUM = r"0|[1-9][0-9]*"
_PRE_IDENT = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_IDENT = r"[0-9A-Za-z-]+"
_SEMVER_RE = re.compile(
    rf"(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE_IDENT}(?:\.{_PRE_IDENT})*))?"
    rf"(?:\+(?P<build>{_BUILD_IDENT}(?:\.{_BUILD_IDENT})*))?",
    re.ASCII,
)
_MAX_LENGTH = 256
_UINT64_MAX = 2**64 - 1


class SemverError(ValueError):
    """The text is not a semantic version."""


PrereleaseIdent = int | str


def _ident_key(ident: PrereleaseIdent) -> tuple[int, int, str]:
    # Numeric identifiers have lower precedence than alphanumeric ones.
    return (0, ident, "") if isinstance(ident, int) else (1, 0, ident)


@functools.total_ordering
class Semver:
    """An immutable, hashable, totally ordered semantic version."""

    __slots__ = ("_hash", "_k", "build", "major", "minor", "patch", "prerelease")

    major: int
    minor: int
    patch: int
    prerelease: tuple[PrereleaseIdent, ...]
    build: tuple[str, ...]

    def __init__(
        self,
        major: int,
        minor: int = 0,
        patch: int = 0,
        prerelease: tuple[PrereleaseIdent, ...] = (),
        build: tuple[str, ...] = (),
    ) -> None:
        for name, part in (("major", major), ("minor", minor), ("patch", patch)):
            if not 0 <= part <= _UINT64_MAX:
                raise SemverError(f"{name} version {part} is out of range")
        self.major, self.minor, self.patch = major, minor, patch
        self.prerelease = tuple(prerelease)
        self.build = tuple(build)
        self._k = self._make_key()
        self._hash = hash(("Semver", self._k))

    @classmethod
    def parse(cls, text: str | Semver, *, normalize: bool = False) -> Semver:
        """Parse ``"1.2.3"``, ``"1.0.0-rc.1+build.5"``; raise :class:`SemverError` otherwise.

        ``normalize=True`` is Kubernetes' ``semver(s, true)``: drop a leading ``v``, strip
        leading zeros and fill in a missing minor/patch (``v1.02`` -> ``1.2.0``).
        """
        if isinstance(text, Semver):
            return text
        if not isinstance(text, str):
            raise SemverError(f"invalid semver {text!r}: expected a string such as 1.2.3")
        if normalize:
            text = _normalize(text)
        if len(text) > _MAX_LENGTH:
            raise SemverError(f"invalid semver: longer than {_MAX_LENGTH} characters")
        match = _SEMVER_RE.fullmatch(text)
        if match is None:
            raise SemverError(
                f"invalid semver {text!r}: expected MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] "
                "without leading zeros, e.g. 1.2.3 or 550.54.15"
            )
        pre: tuple[PrereleaseIdent, ...] = ()
        if match["pre"]:
            pre = tuple(int(p) if p.isdigit() else p for p in match["pre"].split("."))
        build = tuple(match["build"].split(".")) if match["build"] else ()
        return cls(int(match["major"]), int(match["minor"]), int(match["patch"]), pre, build)

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        return self._k

    def _make_key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # A release (no pre-release) sorts after all of its pre-releases.
        return (
            self.major,
            self.minor,
            self.patch,
            0 if self.prerelease else 1,
            tuple(_ident_key(i) for i in self.prerelease),
        )

    def compare_to(self, other: Semver) -> int:
        a, b = self._key(), other._key()
        return (a > b) - (a < b)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Semver):
            return self._key() == other._key()
        return NotImplemented

    def __lt__(self, other: Semver) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(p) for p in self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def __repr__(self) -> str:
        return f"Semver({str(self)!r})"


def _normalize(text: str) -> str:
    parts = text.removeprefix("v").split(".", 2)
    for i, part in enumerate(parts):
        if len(part) > 1:
            part = part.lstrip("0")
            if not part or not part[0].isdigit():
                part = "0" + part
            parts[i] = part
    if len(parts) < 3:
        if any(c in parts[-1] for c in "+-"):
            raise SemverError(f"invalid semver {text!r}: short version cannot contain PreRelease/Build meta data")
        parts += ["0"] * (3 - len(parts))
    return ".".join(parts)


def _validate_semver(value: Any) -> Semver:
    """Pydantic hook; the ``invalid_semver:`` prefix becomes the diagnostic code (see gpupolicy.policy.modelbase)."""
    try:
        return Semver.parse(value)
    except SemverError as err:
        raise ValueError(f"invalid_semver: {err}") from None


SemverField = Annotated[
    Semver,
    PlainValidator(_validate_semver),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": _SEMVER_RE.pattern}),
]
"""A pydantic field type: accepts ``"1.2.3"`` from YAML, serializes back to the same text."""
