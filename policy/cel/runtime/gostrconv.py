"""Go's ``strconv`` parsers, as cel-go's string conversions use them (``int(s)``, ``uint(s)``, ``double(s)``).

cel-go v0.29.2 (common/types/string.go) converts with ``strconv.ParseInt(s, 10, 64)``,
``strconv.ParseUint(s, 10, 64)`` and ``strconv.ParseFloat(s, 64)``; any error makes the conversion fail. Python's
``int``/``float`` accept more (surrounding spaces, ``_`` separators in base 10, non-ASCII digits) and less (Go's
hexadecimal floats), so these functions check Go's syntax first and return None where Go returns an error.
"""

from __future__ import annotations

import math

from gpupolicy.policy.quantity import INT64_MAX, INT64_MIN

UINT64_MAX = 2**64 - 1

_DIGITS = frozenset("0123456789")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _decimal_digits(s: str) -> bool:
    return s != "" and all(c in _DIGITS for c in s)


def parse_int(s: str) -> int | None:
    """``strconv.ParseInt(s, 10, 64)``: an optional ``+``/``-`` and ASCII digits, no ``_``, within int64."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if not _decimal_digits(body):
        return None
    value = -int(body) if s[0] == "-" else int(body)
    return value if INT64_MIN <= value <= INT64_MAX else None


def parse_uint(s: str) -> int | None:
    """``strconv.ParseUint(s, 10, 64)``: ASCII digits only (no sign, no ``_``), within uint64."""
    if not _decimal_digits(s):
        return None
    value = int(s)
    return value if value <= UINT64_MAX else None


def _special(s: str) -> float | None:
    """Go's ``special``: ``[+-]inf``, ``[+-]infinity`` and ``nan`` (no sign), any case, the whole string."""
    sign = 1.0
    body = s
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        body = s[1:]
    elif s.lower() == "nan":
        return math.nan
    if body.lower() in ("inf", "infinity"):
        return math.copysign(math.inf, sign)
    return None


def _underscore_ok(s: str) -> bool:
    """Go's ``underscoreOK``: ``_`` only between digits, or between a base prefix and a digit."""
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i = 2
        saw = "0"
        hexa = s[1].lower() == "x"
    for c in s[i:]:
        if c in _DIGITS or (hexa and c in _HEX_DIGITS):
            saw = "0"
            continue
        if c == "_":
            if saw != "0":
                return False
            saw = "_"
            continue
        if saw == "_":
            return False
        saw = "!"
    return saw != "_"


def _float_syntax(s: str) -> bool:
    """Go's ``readFloat`` consuming the whole string (decimal, or hexadecimal with a mandatory ``p`` exponent)."""
    n = len(s)
    i = 0
    if i < n and s[i] in "+-":
        i += 1
    hexa = i + 2 < n and s[i] == "0" and s[i + 1] in "xX"
    if hexa:
        i += 2
    digits = _HEX_DIGITS if hexa else _DIGITS
    underscores = sawdot = sawdigits = False
    while i < n:
        c = s[i]
        if c == "_":
            underscores = True
        elif c == ".":
            if sawdot:
                break
            sawdot = True
        elif c in digits:
            sawdigits = True
        else:
            break
        i += 1
    if not sawdigits:
        return False
    exp_char = "p" if hexa else "e"
    if i < n and s[i].lower() == exp_char:
        i += 1
        if i < n and s[i] in "+-":
            i += 1
        if i >= n or s[i] not in _DIGITS:
            return False
        while i < n and (s[i] in _DIGITS or s[i] == "_"):
            underscores = underscores or s[i] == "_"
            i += 1
    elif hexa:
        return False
    if underscores and not _underscore_ok(s[:i]):
        return False
    return i == n


def parse_float(s: str) -> float | None:
    """``strconv.ParseFloat(s, 64)``: None where Go returns a syntax error or a range error (beyond ±MaxFloat64)."""
    if s == "":
        return None
    special = _special(s)
    if special is not None:
        return special
    if not s.isascii() or not _float_syntax(s):
        return None
    text = s.replace("_", "")
    try:
        body = text.lstrip("+-")
        if body[:2] in ("0x", "0X"):
            value = float.fromhex(text)
        else:
            value = float(text)  # correctly rounded, like Go's; only overflow yields an infinity here
    except OverflowError:
        return None
    return None if math.isinf(value) else value
