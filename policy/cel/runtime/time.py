"""CEL ``google.protobuf.Timestamp`` and ``google.protobuf.Duration`` values, as cel-go represents them.

A :class:`Duration` is Go's ``time.Duration``: int64 nanoseconds (about ±292 years); arithmetic that leaves that
range is ``integer overflow``. A :class:`Timestamp` is Go's ``time.Time`` restricted to cel-go's range, years
0001 to 9999 in UTC (``timestamp overflow`` outside it), with the fixed UTC offset it was written with
(``string()`` prints it in that offset, as Go's ``Format(time.RFC3339Nano)``). Parsing follows Go's
``time.ParseDuration`` and ``time.Parse(time.RFC3339, ...)``; the accessors follow cel-go's ``timestamp.go`` with
``cel.DefaultUTCTimeZone(true)`` (UTC unless a time zone is passed).
"""

from __future__ import annotations

import datetime as _dt
import re
import zoneinfo

from gpupolicy.policy.cel.core import EvalError
from gpupolicy.policy.cel.runtime import gostrconv

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SECOND = 1_000_000_000
MIN_UNIX, MAX_UNIX = -62135596800, 253402300799  # 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z


class Duration:
    """A CEL duration: int64 nanoseconds."""

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and other.ns == self.ns

    def __hash__(self) -> int:
        return hash(("Duration", self.ns))

    def __repr__(self) -> str:
        return f'duration("{duration_string(self)}")'


class Timestamp:
    """A CEL timestamp: seconds since the Unix epoch, nanoseconds (0..999999999), and a UTC offset in seconds."""

    __slots__ = ("nsec", "offset", "sec")

    def __init__(self, sec: int, nsec: int = 0, offset: int = 0) -> None:
        self.sec, self.nsec, self.offset = sec, nsec, offset

    def __eq__(self, other: object) -> bool:  # Go's Time.Equal: the same instant, whatever the offset
        return isinstance(other, Timestamp) and (other.sec, other.nsec) == (self.sec, self.nsec)

    def __hash__(self) -> int:
        return hash(("Timestamp", self.sec, self.nsec))

    def __repr__(self) -> str:
        return f'timestamp("{timestamp_string(self)}")'


def _int64(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise EvalError("integer overflow")
    return value


def _checked(sec: int, nsec: int, offset: int) -> Timestamp:
    sec, nsec = sec + nsec // SECOND, nsec % SECOND
    if not MIN_UNIX <= sec <= MAX_UNIX:
        raise EvalError("timestamp overflow")
    return Timestamp(sec, nsec, offset)


# --- arithmetic (cel-go's overflow.go) ----------------------------------------------------


def add_durations(a: Duration, b: Duration) -> Duration:
    return Duration(_int64(a.ns + b.ns))


def sub_durations(a: Duration, b: Duration) -> Duration:
    return Duration(_int64(a.ns - b.ns))


def add_duration(t: Timestamp, d: Duration) -> Timestamp:
    whole = _trunc(d.ns, SECOND)
    return _checked(t.sec + whole, t.nsec + d.ns - whole * SECOND, t.offset)


def sub_duration(t: Timestamp, d: Duration) -> Timestamp:
    return add_duration(t, Duration(_int64(-d.ns)))


def sub_timestamps(a: Timestamp, b: Timestamp) -> Duration:
    return Duration(_int64(_int64(a.sec - b.sec) * SECOND + a.nsec - b.nsec))


def compare(a: Duration | Timestamp, b: Duration | Timestamp) -> int:
    x = a.ns if isinstance(a, Duration) else (a.sec, a.nsec)
    y = b.ns if isinstance(b, Duration) else (b.sec, b.nsec)
    return (x > y) - (x < y)  # type: ignore[operator]


# --- durations: Go's time.ParseDuration and cel-go's string form ---------------------------

_UNITS = {"ns": 1, "us": 1000, "\u00b5s": 1000, "\u03bcs": 1000, "ms": 10**6, "s": SECOND, "m": 60 * SECOND,
          "h": 3600 * SECOND}  # fmt: skip
_LIMIT = 1 << 63


def parse_duration(text: str) -> Duration:
    """Go's ``time.ParseDuration``: ``[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+``, or ``0``."""
    s, neg = text, False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return Duration(0)
    if not s:
        raise _bad_duration()
    total = 0
    while s:
        if not (s[0] == "." or s[0] in "0123456789"):
            raise _bad_duration()
        digits = len(s) - len(s.lstrip("0123456789"))
        whole = int(s[:digits]) if digits else 0
        if whole > _LIMIT:
            raise _bad_duration()
        s = s[digits:]
        frac, scale, fdigits = 0, 1, 0
        if s[:1] == ".":
            s = s[1:]
            fdigits = len(s) - len(s.lstrip("0123456789"))
            for ch in s[:fdigits]:  # Go's leadingFraction: digits past int64 precision are dropped
                if frac > (_LIMIT - 1) // 10 or frac * 10 + int(ch) > _LIMIT:
                    break
                frac, scale = frac * 10 + int(ch), scale * 10
            s = s[fdigits:]
        if not digits and not fdigits:
            raise _bad_duration()
        n = 0
        while n < len(s) and not (s[n] == "." or s[n] in "0123456789"):
            n += 1
        if n == 0 or s[:n] not in _UNITS:
            raise _bad_duration()
        unit = _UNITS[s[:n]]
        s = s[n:]
        if whole > _LIMIT // unit:
            raise _bad_duration()
        value = whole * unit
        if frac > 0:
            value += int(float(frac) * (float(unit) / float(scale)))
            if value > _LIMIT:
                raise _bad_duration()
        total += value
        if total > _LIMIT:
            raise _bad_duration()
    if not neg and total > INT64_MAX:
        raise _bad_duration()
    return Duration(-total if neg else total)


def _bad_duration() -> EvalError:
    return EvalError("type conversion error from 'string' to 'google.protobuf.Duration'")


def duration_string(d: Duration) -> str:
    """cel-go's ``string(duration)``: seconds as Go's ``FormatFloat(d.Seconds(), 'f', -1, 64)`` plus ``s``."""
    whole, rem = divmod(abs(d.ns), SECOND)
    seconds = float(whole) + float(rem) / 1e9  # Go's Duration.Seconds()
    text = repr(seconds)  # the shortest round-trip digits, as Go's -1 precision
    if "e" in text:
        text = _shortest_fixed(seconds)
    elif text.endswith(".0"):
        text = text[:-2]
    return ("-" if d.ns < 0 else "") + text + "s"


def _shortest_fixed(value: float) -> str:
    """``repr`` digits without an exponent (Go's 'f' format with the shortest precision)."""
    mantissa, _, exponent = repr(value).partition("e")
    digits = mantissa.replace(".", "")
    point = (mantissa.find(".") if "." in mantissa else len(mantissa)) + int(exponent)
    if point <= 0:
        return "0." + "0" * -point + digits.rstrip("0")
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:].rstrip("0")


# --- timestamps: Go's RFC 3339 parser and formatter ---------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|([+-])(\d{2}):(\d{2}))", re.ASCII
)


def parse_timestamp(text: str) -> Timestamp:
    """Go's ``time.Parse(time.RFC3339, text)``, then cel-go's range check."""
    m = _RFC3339.fullmatch(text)
    bad = EvalError("type conversion error from 'string' to 'google.protobuf.Timestamp'")
    if m is None:
        raise bad
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= _days_in(month, year) and hour < 24 and minute < 60 and second < 60):
        raise bad
    nsec = int((m.group(7) or "")[:9].ljust(9, "0"))
    offset = 0
    if m.group(8) != "Z":
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 24 or om > 60:  # Go's general parser (after its strict RFC 3339 path) allows 24:00 and 23:60
            raise bad
        offset = (oh * 60 + om) * 60 * (-1 if m.group(9) == "-" else 1)
    sec = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset
    return _checked(sec, nsec, offset)


def from_unix(seconds: int) -> Timestamp:
    """``timestamp(int)``: seconds since the epoch, in UTC."""
    return _checked(seconds, 0, 0)


def timestamp_string(t: Timestamp) -> str:
    """Go's ``Format(time.RFC3339Nano)`` in the timestamp's own offset."""
    year, month, day, rest = _civil(t.sec + t.offset)
    text = f"{year:04d}-{month:02d}-{day:02d}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"
    if t.nsec:
        text += "." + f"{t.nsec:09d}".rstrip("0")
    if t.offset == 0:
        return text + "Z"
    sign = "-" if t.offset < 0 else "+"
    minutes = abs(t.offset) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + (yoe * 365 + yoe // 4 - yoe // 100 + doy) - 719468


def _civil(local_seconds: int) -> tuple[int, int, int, int]:
    """(year, month, day, seconds of the day) of seconds since 1970-01-01T00:00:00 in some zone."""
    days, rest = divmod(local_seconds, 86400)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day, rest


# --- accessors ----------------------------------------------------------------------------


def _zone_offset(t: Timestamp, tz: str) -> int:
    """The UTC offset in seconds of time zone ``tz`` at ``t``, as cel-go's stdlib ``inTimeZone``: an IANA name,
    or ``H:M`` (two integers, as ``strconv.Atoi`` reads them; a leading ``-`` makes the minutes negative too)."""
    if ":" not in tz:
        if tz in ("", "UTC", "Local"):
            return 0
        try:
            zone = zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise EvalError(f"unknown time zone {tz}") from None
        instant = _dt.datetime.fromtimestamp(min(max(t.sec, MIN_UNIX + 86400), MAX_UNIX - 86400), _dt.UTC)
        delta = zone.utcoffset(instant)
        return int(delta.total_seconds()) if delta is not None else 0
    head, _, tail = tz.partition(":")
    hours, minutes = _atoi(head), _atoi(tail)
    total = hours * 60 - minutes if tz.startswith("-") else hours * 60 + minutes
    return total * 60


def _atoi(text: str) -> int:
    """Go's ``strconv.Atoi``, with its error text."""
    value = gostrconv.parse_int(text)
    if value is None:
        why = "value out of range" if re.fullmatch(r"[+-]?[0-9]+", text, re.ASCII) else "invalid syntax"
        raise EvalError(f'strconv.Atoi: parsing "{text}": {why}')
    return value


def _fields(t: Timestamp, tz: str | None) -> tuple[int, int, int, int, int]:
    """(year, month, day, seconds of the day, days since the epoch) of ``t`` in UTC or in ``tz``."""
    local = t.sec + (_zone_offset(t, tz) if tz is not None else 0)
    year, month, day, rest = _civil(local)
    return year, month, day, rest, local // 86400


def full_year(t: Timestamp, tz: str | None = None) -> int:
    return _fields(t, tz)[0]


def month(t: Timestamp, tz: str | None = None) -> int:
    return _fields(t, tz)[1] - 1


def day_of_year(t: Timestamp, tz: str | None = None) -> int:
    year, _, _, _, days = _fields(t, tz)
    return days - _days_from_civil(year, 1, 1)


def day_of_month(t: Timestamp, tz: str | None = None) -> int:
    return _fields(t, tz)[2] - 1


def date(t: Timestamp, tz: str | None = None) -> int:
    return _fields(t, tz)[2]


def day_of_week(t: Timestamp, tz: str | None = None) -> int:
    return (_fields(t, tz)[4] + 4) % 7  # 1970-01-01 was a Thursday; Sunday is 0


def hours(t: Timestamp, tz: str | None = None) -> int:
    return _fields(t, tz)[3] // 3600


def minutes(t: Timestamp, tz: str | None = None) -> int:
    return _fields(t, tz)[3] // 60 % 60


def seconds(t: Timestamp, tz: str | None = None) -> int:
    return _fields(t, tz)[3] % 60


def milliseconds(t: Timestamp, tz: str | None = None) -> int:
    if tz is not None:
        _zone_offset(t, tz)  # an invalid zone is an error here too
    return t.nsec // 1_000_000


def _trunc(ns: int, unit: int) -> int:
    return -(-ns // unit) if ns < 0 else ns // unit


def duration_hours(d: Duration) -> int:
    return _trunc(d.ns, 3600 * SECOND)


def duration_minutes(d: Duration) -> int:
    return _trunc(d.ns, 60 * SECOND)


def duration_seconds(d: Duration) -> int:
    return _trunc(d.ns, SECOND)


def duration_milliseconds(d: Duration) -> int:
    return _trunc(d.ns, 1_000_000)
