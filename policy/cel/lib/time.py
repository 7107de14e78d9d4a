"""The timestamp and duration functions of CEL's standard library (cel-go ``common/stdlib``), as Kubernetes has them.

``duration(string)`` (Go's ``time.ParseDuration``), ``timestamp(string)`` (RFC 3339), ``timestamp(int)`` (Unix
seconds), ``int(duration)`` (nanoseconds), ``int(timestamp)`` (Unix seconds), ``string(...)`` of both, and the
accessors ``getFullYear``, ``getMonth``, ``getDayOfYear``, ``getDayOfMonth``, ``getDate``, ``getDayOfWeek``,
``getHours``, ``getMinutes``, ``getSeconds``, ``getMilliseconds`` (on a timestamp, in UTC or in the time zone
passed: an IANA name or ``[+-]HH:MM``; ``getHours`` ... ``getMilliseconds`` also on a duration, truncated).
Arithmetic and comparisons are operators (:mod:`gpupolicy.policy.cel.runtime.ops`). Entries are
``(params, result, impl)``, registered by :mod:`.functions`.
"""

from __future__ import annotations

from collections.abc import Callable

from gpupolicy.policy.cel.core import StaticType
from gpupolicy.policy.cel.runtime import time as t

TS, DUR, STR, INT = "timestamp", "duration", "string", "int"
Decl = tuple[tuple[StaticType, ...], StaticType, Callable[..., object]]

GLOBAL: dict[str, list[Decl]] = {
    "duration": [((STR,), DUR, t.parse_duration), ((DUR,), DUR, lambda d: d)],
    "timestamp": [((STR,), TS, t.parse_timestamp), ((INT,), TS, t.from_unix), ((TS,), TS, lambda v: v)],
}
# conversions added to the standard ``int`` and ``string`` functions
CONVERSIONS: dict[str, list[Decl]] = {
    "int": [((DUR,), INT, lambda d: d.ns), ((TS,), INT, lambda v: v.sec)],
}

_TIMESTAMP_ACCESSORS: dict[str, Callable[..., int]] = {
    "getFullYear": t.full_year,
    "getMonth": t.month,
    "getDayOfYear": t.day_of_year,
    "getDayOfMonth": t.day_of_month,
    "getDate": t.date,
    "getDayOfWeek": t.day_of_week,
    "getHours": t.hours,
    "getMinutes": t.minutes,
    "getSeconds": t.seconds,
    "getMilliseconds": t.milliseconds,
}
_DURATION_ACCESSORS: dict[str, Callable[[t.Duration], int]] = {
    "getHours": t.duration_hours,
    "getMinutes": t.duration_minutes,
    "getSeconds": t.duration_seconds,
    "getMilliseconds": t.duration_milliseconds,
}


def _accessor(name: str, fn: Callable[..., int]) -> list[Decl]:
    decls: list[Decl] = [((TS,), INT, fn), ((TS, STR), INT, fn)]
    if name in _DURATION_ACCESSORS:
        decls.append(((DUR,), INT, _DURATION_ACCESSORS[name]))
    return decls


MEMBER: dict[str, list[Decl]] = {name: _accessor(name, fn) for name, fn in _TIMESTAMP_ACCESSORS.items()}
