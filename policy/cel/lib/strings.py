"""The CEL strings extension (cel-go ``ext.Strings``) and string conversions, over Python ``str``.

Indices count Unicode code points, as cel-go does. Errors raise :class:`EvalError` with cel-go's
wording where it is known (``index out of range: 7``).

A function that builds a string knows how long the result will be before it builds it
(``replace``, ``join``, ``strings.quote``) or builds it piece by piece and stops at the limit
(``format``): no result longer than ``MAX_STRING`` characters is ever built, whatever it was asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from gpupolicy.policy.cel.core import EvalError
from gpupolicy.policy.cel.runtime.time import Duration, Timestamp, duration_string, timestamp_string
from gpupolicy.policy.cel.runtime.values import MAX_LIST, MAX_STRING, TypeValue, runtime_type

MAX_PRECISION = 1_000_000  # Go's fmt refuses a wider precision; the widest %f result still fits MAX_STRING


def _too_long() -> EvalError:
    return EvalError(f"string result longer than {MAX_STRING} characters")


def _check_size(size: int) -> None:
    """Refuse a result of ``size`` characters before building it."""
    if size > MAX_STRING:
        raise _too_long()


class _Builder:
    """A string built from pieces that stops as soon as it would pass ``MAX_STRING`` characters."""

    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def add(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_STRING:
            raise _too_long()
        self.parts.append(text)

    def text(self) -> str:
        return "".join(self.parts)


def char_at(s: str, i: int) -> str:
    if i < 0 or i > len(s):
        raise EvalError(f"index out of range: {i}")
    return s[i : i + 1]


def index_of(s: str, sub: str, offset: int = 0) -> int:
    """cel-go's ``indexOfOffset``: a negative offset is an error, also for ``""``, which matches at the offset
    clamped to the end of ``s``; an offset at or past the end finds nothing else."""
    if offset < 0:
        raise EvalError(f"index out of range: {offset}")
    if sub == "":
        return min(offset, len(s))
    if offset >= len(s):
        return -1
    return s.find(sub, offset)


def last_index_of(s: str, sub: str, offset: int | None = None) -> int:
    """cel-go's ``lastIndexOf``/``lastIndexOfOffset``: without an offset, ``""`` is found at the end and a ``sub``
    longer than ``s`` (in UTF-8 bytes, as Go compares them) nowhere; with one, as ``index_of`` from the right."""
    if offset is None:
        if sub == "":
            return len(s)
        if len(s.encode()) < len(sub.encode()):
            return -1
        offset = len(s) - 1
    if offset < 0:
        raise EvalError(f"index out of range: {offset}")
    if sub == "":
        return min(offset, len(s))
    if offset >= len(s):
        return -1
    return s.rfind(sub, 0, offset + len(sub))


def lower_ascii(s: str) -> str:
    return s.translate(_LOWER)


def upper_ascii(s: str) -> str:
    return s.translate(_UPPER)


_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def replace(s: str, old: str, new: str, n: int = -1) -> str:
    if n == 0:
        return s
    if old == "":  # Go inserts ``new`` at every code point boundary (up to n times)
        count = len(s) + 1 if n < 0 else min(n, len(s) + 1)
        _check_size(len(s) + count * len(new))
        out = new + new.join(s[:count]) + s[count:]  # before each of the first ``count`` characters ...
        return out + new if count > len(s) > 0 else out  # ... and after the last one
    count = s.count(old) if n < 0 else min(n, s.count(old))
    _check_size(len(s) + count * (len(new) - len(old)))
    return s.replace(old, new, count)


def split(s: str, sep: str, n: int = -1) -> list[str]:
    if n == 0:
        return []
    pieces = len(s) if sep == "" else s.count(sep) + 1
    if (min(pieces, n) if n > 0 else pieces) > MAX_LIST:  # counted before the list is built
        raise EvalError(f"list result longer than {MAX_LIST} elements")
    if sep == "":
        parts = list(s)
        if 0 < n < len(parts):
            parts = [*parts[: n - 1], "".join(parts[n - 1 :])]
        return parts
    if n < 0:
        return s.split(sep)
    return s.split(sep, n - 1)


def substring(s: str, start: int, end: int | None = None) -> str:
    stop = len(s) if end is None else end
    if start > stop:
        raise EvalError(f"invalid substring range. start: {start}, end: {stop}")
    if start < 0 or start > len(s):
        raise EvalError(f"index out of range: {start}")
    if stop < 0 or stop > len(s):
        raise EvalError(f"index out of range: {stop}")
    return s[start:stop]


_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def trim(s: str) -> str:
    return s.strip(_GO_SPACE)


def join(items: Sequence[object], sep: str = "") -> str:
    size = len(sep) * max(len(items) - 1, 0)
    for item in items:
        if not isinstance(item, str):
            raise EvalError(f"join: list element is {runtime_type(item)}, not string")
        size += len(item)
    _check_size(size)
    return sep.join(items)  # type: ignore[arg-type]


_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
                  '"': '\\"', "\\": "\\\\"}  # fmt: skip
_QUOTE_TABLE = str.maketrans(_QUOTE_ESCAPES)


def quote(s: str) -> str:
    _check_size(len(s) + 2 + sum(s.count(ch) for ch in _QUOTE_ESCAPES))  # each escape adds one character
    return '"' + s.translate(_QUOTE_TABLE) + '"'


def format_double(f: float) -> str:
    """Go's ``strconv.FormatFloat(f, 'g', -1, 64)`` as cel-go prints doubles."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    sign = "-" if f < 0 else ""
    digits, exp = _shortest_digits(abs(f))
    point = exp + 1  # position of the decimal point after the first digit
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _shortest_digits(f: float) -> tuple[str, int]:
    """The shortest round-tripping decimal digits of ``f > 0`` and the exponent of the first digit."""
    d = Decimal(repr(f)).normalize()
    digits = "".join(str(x) for x in d.as_tuple().digits)
    return digits, d.adjusted()


def to_string(value: object) -> str:
    """CEL ``string(x)``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(int(value)) if isinstance(value, int) else value
    if isinstance(value, float):
        return format_double(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise EvalError("invalid UTF-8 in bytes, cannot convert to string") from None
    if value.__class__.__name__ in ("IP", "CIDR"):
        return str(value)
    if isinstance(value, Duration):
        return duration_string(value)
    if isinstance(value, Timestamp):
        return timestamp_string(value)
    raise EvalError(f"no such overload: string({runtime_type(value)})")


def display(value: object, nested: bool = False) -> str:
    """How ``%s`` in ``format`` prints a value, as cel-go's strings extension (version 2, ``formatting.go``) does."""
    out = _Builder()
    _display(out, value, nested)
    return out.text()


def _display(out: _Builder, value: object, nested: bool) -> None:
    """``display`` piece by piece (a list of a thousand megabyte strings stops at the second one). At the top
    (``FormatString``) a value prints as ``string(value)``; inside a list or map (``clauseForType`` and
    ``quoteForCEL``) strings are Go-quoted, bytes ``b"..."``, doubles ``%.6f`` (infinities and NaN quoted), and map
    entries are ``key:value``, sorted by the printed key."""
    if isinstance(value, (list, tuple)):
        out.add("[")
        for i, item in enumerate(value):
            if i:
                out.add(", ")
            _display(out, item, True)
        out.add("]")
    elif isinstance(value, Mapping):
        entries = sorted((_map_key(key), item) for key, item in value.items())
        out.add("{")
        for i, (key, item) in enumerate(entries):
            if i:
                out.add(", ")
            out.add(key)
            out.add(":")
            _display(out, item, True)
        out.add("}")
    elif value is None:
        out.add("null")
    elif isinstance(value, TypeValue):
        out.add(value.name)
    elif nested and isinstance(value, (Duration, Timestamp)):  # cel-go prints them as CEL literals in a list
        out.add(f'{"duration" if isinstance(value, Duration) else "timestamp"}("{to_string(value)}")')
    elif isinstance(value, (Duration, Timestamp)):
        out.add(to_string(value))
    elif not isinstance(value, (bool, int, float, str, bytes)):
        raise EvalError(
            "error during formatting: string clause can only be used on strings, bools, bytes, ints, doubles, "
            f"maps, lists, types, durations, and timestamps, was given {runtime_type(value)}"
        )
    elif not nested:
        out.add(to_string(value))
    elif isinstance(value, str):
        out.add(go_quote(value))
    elif isinstance(value, bytes):
        out.add("b" + go_quote(to_string(value)))
    elif isinstance(value, float):
        text = _list_double(value)
        out.add(text if math.isfinite(value) else go_quote(text))
    else:
        out.add(to_string(value))


def _map_key(key: object) -> str:
    if isinstance(key, str):
        return go_quote(key)
    if isinstance(key, (bool, int)):
        return to_string(key)
    raise EvalError(f"no formatting function for map key of type {runtime_type(key)}")


def _list_double(f: float) -> str:
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    return f"{f:.6f}"


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote`` (``%q``): printable characters kept, the rest escaped as Go escapes them."""
    parts = ['"']
    for ch in s:
        code = ord(ch)
        if ch in ('"', "\\"):
            parts.append("\\" + ch)
        elif ch in _SHORT_ESCAPES:
            parts.append(_SHORT_ESCAPES[ch])
        elif ch.isprintable() or ch == " ":
            parts.append(ch)
        elif code < 0x80:
            parts.append(f"\\x{code:02x}")
        elif code < 0x10000:
            parts.append(f"\\u{code:04x}")
        else:
            parts.append(f"\\U{code:08x}")
    parts.append('"')
    return "".join(parts)


_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def format_string(template: str, args: Sequence[object]) -> str:
    """``"%s has %d GiB".format([name, n])``: verbs %s %d %f %e %x %X %o %b %%, precision like ``%.2f``
    (at most ``MAX_PRECISION``). The result is built piece by piece and refused as soon as it would
    pass ``MAX_STRING`` characters."""
    out = _Builder()
    for text, verb, precision, index in format_clauses(template, len(args)):
        if verb:
            _format_one(out, verb, precision, args[index])
        else:
            out.add(text)
    return out.text()


def format_clauses(template: str, size: int, static: bool = False) -> Iterator[tuple[str, str, int | None, int]]:
    """The pieces of a template in cel-go's order (``parseFormatString``): ``(text, "", None, -1)`` for
    literal text, ``("", verb, precision, argument index)`` for a clause. At run time a clause past the
    arguments is ``index N out of range`` before the clause is read; ``static`` (the compile-time check)
    reads the clause first."""
    i, arg_index = 0, 0
    while i < len(template):
        if template[i] != "%":
            j = template.find("%", i)
            j = len(template) if j < 0 else j
            yield template[i:j], "", None, -1
            i = j
            continue
        if template[i + 1 : i + 2] == "%":
            yield "%", "", None, -1
            i += 2
            continue
        if arg_index >= size and not static:
            raise EvalError(f"index {arg_index} out of range")
        if i + 1 >= len(template):
            raise EvalError("unexpected end of string")
        if arg_index >= size:
            raise EvalError(f"index {arg_index} out of range")
        i += 1
        precision: int | None = None
        if template[i] == ".":
            j = i + 1
            while j < len(template) and "0" <= template[j] <= "9":
                j += 1
            precision = _precision(template[i + 1 : j])
            i = j
        if i >= len(template):
            raise EvalError(
                "could not parse formatting clause: error while parsing precision: "
                "could not find end of precision specifier"
            )
        verb = template[i]
        i += 1
        if verb not in "sdfebxXo":
            raise EvalError(f'could not parse formatting clause: unrecognized formatting clause "{verb}"')
        yield "", verb, precision, arg_index
        arg_index += 1


# What each clause takes, by static type kind (cel-go's ``stringFormatChecker``; ``dyn`` passes every clause),
# and the error text for any other type.
_CLAUSE_KINDS: dict[str, tuple[frozenset[str], str]] = {
    "d": (frozenset({"int", "uint"}), "decimal clause can only be used on integers"),
    "o": (frozenset({"int", "uint"}), "octal clause can only be used on integers"),
    "f": (frozenset({"double", "string"}), "fixed-point clause can only be used on doubles"),
    "e": (frozenset({"double", "string"}), "scientific clause can only be used on doubles"),
    "b": (frozenset({"int", "uint", "bool"}), "only integers and bools can be formatted as binary"),
    "x": (
        frozenset({"int", "uint", "string", "bytes"}),
        "only integers, byte buffers, and strings can be formatted as hex",
    ),
    "s": (
        frozenset({"list", "map", "int", "uint", "double", "bool", "string", "timestamp", "bytes", "duration", "type",
                   "null_type"}),
        "string clause can only be used on strings, bools, bytes, ints, doubles, maps, lists, types, durations, and "
        "timestamps",
    ),
}  # fmt: skip
_CLAUSE_KINDS["X"] = _CLAUSE_KINDS["x"]


class FormatArgError(EvalError):
    """A clause given an argument of the wrong static type; ``pos`` is where that argument is."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


@dataclass(frozen=True)
class FormatArg:
    """What the compile-time check knows of an argument in a literal list: its static type kind and name, its
    position, and for lists and maps written as literals, their elements (checked again for ``%s``)."""

    kind: str
    name: str
    pos: int
    elements: tuple[FormatArg, ...] = ()


def validate_format(template: str, args: Sequence[FormatArg]) -> int:
    """cel-go's compile-time check of ``"<literal>".format([<list literal>])``: the template parses and each
    clause's argument has a static type the clause takes. Returns how many arguments the template uses."""
    used = 0
    for _, verb, _, index in format_clauses(template, len(args), static=True):
        if not verb:
            continue
        used += 1
        bad = _bad_format_arg(verb, args[index])
        if bad is not None:
            message = _CLAUSE_KINDS[verb][1]
            raise FormatArgError(f"error during formatting: {message}, was given {bad.name}", bad.pos)
    return used


def _bad_format_arg(verb: str, arg: FormatArg) -> FormatArg | None:
    if arg.kind != "dyn" and arg.kind not in _CLAUSE_KINDS[verb][0]:
        return arg
    if verb == "s":
        for element in arg.elements:
            bad = _bad_format_arg(verb, element)
            if bad is not None:
                return bad
    return None


def _precision(digits: str) -> int:
    """The precision of ``%.Nf``, refused above ``MAX_PRECISION`` before any digit is formatted."""
    if len(digits) > len(str(MAX_PRECISION)) or int(digits or "0") > MAX_PRECISION:
        shown = digits if len(digits) <= 20 else f"of {len(digits)} digits"
        raise EvalError(
            "could not parse formatting clause: error while parsing precision:"
            f" precision {shown} is larger than {MAX_PRECISION}"
        )
    return int(digits or "0")


def _format_one(out: _Builder, verb: str, precision: int | None, arg: object) -> None:
    if verb == "s":
        _display(out, arg, False)
    else:
        out.add(_format_number(verb, precision, arg))


def _format_number(verb: str, precision: int | None, arg: object) -> str:
    if verb == "d":
        if isinstance(arg, int) and not isinstance(arg, bool):
            return str(int(arg))
        raise EvalError(
            f"error during formatting: decimal clause can only be used on integers, was given {runtime_type(arg)}"
        )
    if verb in "fe":
        if isinstance(arg, str) and arg in ("NaN", "Infinity", "-Infinity"):
            arg = float(arg)
        if not isinstance(arg, float):
            clause = "fixed-point" if verb == "f" else "scientific"
            raise EvalError(
                f"error during formatting: {clause} clause can only be used on doubles, was given {runtime_type(arg)}"
            )
        return _go_fixed(arg, precision) if verb == "f" else _go_scientific(arg, precision)
    if verb in "xXob":
        return _format_radix(verb, arg)
    raise EvalError(f'could not parse formatting clause: unrecognized formatting clause "{verb}"')  # pragma: no cover


# cel-go's strings library at the version Kubernetes uses (ext.StringsVersion(2), formatting.go) prints %f and %e
# through golang.org/x/text's message printer for the "en_US" locale: thousands are grouped, infinity is "∞", a
# negative zero loses its sign, and %e writes "1.234500×10⁰³". For %e it builds the verb "%<precision>e", so the
# precision is a minimum width (default 6) and the digits are always Go's default six.
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _go_special(x: float) -> str | None:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return None


def _go_fixed(x: float, precision: int | None) -> str:
    special = _go_special(x)
    if special is not None:
        return special
    digits = 6 if precision is None else precision
    _check_size(digits + (len(str(int(abs(x)))) * 4) // 3 + 2)
    whole, dot, fraction = f"{abs(x):.{digits}f}".partition(".")
    sign = "-" if x < 0 else ""  # -0.0 prints as 0, -0.001 as -0.00, as x/text does
    return f"{sign}{int(whole):,}{dot}{fraction}"


def _go_scientific(x: float, precision: int | None) -> str:
    text = _go_special(x)
    if text is None:
        mantissa, _, exponent = f"{abs(x):.6e}".partition("e")
        power = int(exponent)
        sign = "-" if x < 0 else ""
        text = f"{sign}{mantissa}×10" + (("-" if power < 0 else "") + str(abs(power)).rjust(2, "0")).translate(
            _SUPERSCRIPT
        )
    width = 6 if precision is None else precision
    _check_size(max(width, len(text)))
    return text.rjust(width)


def _format_radix(verb: str, arg: object) -> str:
    if verb == "b" and isinstance(arg, bool):
        return "1" if arg else "0"
    if isinstance(arg, int) and not isinstance(arg, bool):
        spec = {"x": "x", "X": "X", "o": "o", "b": "b"}[verb]
        text = format(abs(int(arg)), spec)
        return ("-" if arg < 0 else "") + text
    if verb in "xX" and isinstance(arg, (str, bytes)):
        raw = arg.encode("utf-8", "surrogatepass") if isinstance(arg, str) else arg
        _check_size(2 * len(raw))
        text = raw.hex()
        return text.upper() if verb == "X" else text
    message = _CLAUSE_KINDS[verb][1]
    raise EvalError(f"error during formatting: {message}, was given {runtime_type(arg)}")
