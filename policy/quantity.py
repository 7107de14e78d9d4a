"""Kubernetes ``resource.Quantity``: exact fixed-point amounts such as ``40Gi``, ``500m`` or ``1e3``.

Values are held exactly as an integer number of nano-units (Kubernetes rounds every parsed
value away from zero to a multiple of ``1n``), together with the *format family* of the input
(``BinarySI`` for ``Ki``..``Ei``, ``DecimalSI`` for ``n u m k M G T P E`` and plain numbers,
``DecimalExponent`` for ``1e3``). ``str()`` gives the canonical text the API server writes back,
following Go's ``Quantity.String()``: ``1000m`` -> ``1``, ``1024Mi`` -> ``1Gi``,
``1.5Gi`` -> ``1536Mi``, ``0.5`` -> ``500m``.

Deviations from Go, all on inputs no real object uses: at least one digit is required
(Go reads ``"Gi"`` and ``"+"`` as zero), magnitudes above ``10**1000`` are refused instead of
being carried as arbitrary-precision decimals, and a DecimalSI value whose exponent has no
SI suffix (beyond ``E``) is written in exponent form instead of without a suffix.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from gpupolicy.policy import goquantity
from gpupolicy.policy.goquantity import GoAmount

NANO = 10**9
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# The largest accepted magnitude is 10**4000 (Kubernetes keeps any exponent that fits an int32; beyond this bound
# gpupolicy refuses the quantity rather than compute with numbers of millions of digits, see docs/objects.md).
_MAX_DECIMAL_DIGITS = 4000
_MAX_TEXT_LENGTH = 1024

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {exp: suffix for suffix, exp in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]

_QUANTITY_RE = re.compile(
    r"(?P<sign>[+-]?)(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?(?P<suffix>[eEinumkKMGTP]*[-+]?[0-9]*)", re.ASCII
)


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity, or an operation on quantities is not possible."""


class QuantityFormat(enum.Enum):
    BINARY_SI = "BinarySI"
    DECIMAL_SI = "DecimalSI"
    DECIMAL_EXPONENT = "DecimalExponent"


def _interpret_suffix(suffix: str, text: str) -> tuple[int, int, QuantityFormat]:
    """Return (base, exponent, format) for a suffix, like Go's ``quantitySuffixer.interpret``."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], QuantityFormat.DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], QuantityFormat.BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[-+]?[0-9]+", suffix[1:], re.ASCII):
        parsed = int(suffix[1:])
        if INT64_MIN <= parsed <= INT64_MAX:  # strconv.ParseInt(.., 64), then Go's int32(parsed) keeps the low bits
            exponent = (parsed + 2**31) % 2**32 - 2**31
            return 10, exponent, QuantityFormat.DECIMAL_EXPONENT
    raise QuantityError(f"invalid quantity {text!r}: unknown suffix {suffix!r}")


def _ceil_div(numerator: int, denominator: int) -> int:
    """Divide magnitudes rounding away from zero (Go's inf.RoundUp)."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def _parse_text(text: str) -> tuple[int, QuantityFormat, GoAmount]:
    if len(text) > _MAX_TEXT_LENGTH:
        raise QuantityError(f"invalid quantity: longer than {_MAX_TEXT_LENGTH} characters")
    match = _QUANTITY_RE.fullmatch(text)
    if match is None or not text:
        raise QuantityError(
            f"invalid quantity {text!r}: quantities look like 40Gi, 500m, 1.5, 1e3 (a number and an optional suffix)"
        )
    # A number without digits ("+", ".", "e3", "-.Ki") is zero, as Go's parseQuantityString reads it.
    digits_int, digits_frac = match["int"], match["frac"] or ""
    base, exponent, fmt = _interpret_suffix(match["suffix"], text)
    mantissa = int((digits_int + digits_frac) or "0")
    if match["sign"] == "-":
        mantissa = -mantissa
    scale = -len(digits_frac)  # value = mantissa * 10**scale * base**exponent
    if base == 10:
        scale += exponent
        binary_factor = 1
    else:
        binary_factor = 1 << exponent
    nanos = _to_nanos(mantissa * binary_factor, scale, text)
    capped = fmt is QuantityFormat.BINARY_SI and abs(nanos) > INT64_MAX * NANO
    if capped:  # Kubernetes caps BinarySI magnitudes at the int64 maximum
        nanos = INT64_MAX * NANO if nanos > 0 else -INT64_MAX * NANO
    go = goquantity.parsed(
        match["sign"] == "-", digits_int, digits_frac, base, exponent, fmt is QuantityFormat.BINARY_SI, nanos, capped
    )
    return nanos, fmt, go


def _to_nanos(mantissa: int, scale: int, text: str) -> int:
    """``mantissa * 10**scale`` in nano-units, rounded away from zero."""
    if mantissa == 0:
        return 0
    magnitude = len(str(abs(mantissa))) + scale  # 10**(magnitude-1) <= |value| < 10**magnitude
    if magnitude > _MAX_DECIMAL_DIGITS:
        raise QuantityError(f"invalid quantity {text!r}: value is too large")
    if magnitude < -9:
        return 1 if mantissa > 0 else -1
    shift = scale + 9
    if shift >= 0:
        return mantissa * int(10**shift)
    return _ceil_div(mantissa, int(10**-shift))


_Q = TypeVar("_Q", bound="Quantity")


class Quantity:
    """An exact Kubernetes quantity. ``Quantity("1Gi") == Quantity(1073741824)``; immutable, hashable."""

    __slots__ = ("_format", "_go", "_nanos")

    _nanos: int
    _format: QuantityFormat
    _go: GoAmount | None  # how Go holds it (see gpupolicy.policy.goquantity); None: as Go parses str(self)

    def __init__(self, value: str | int | float | Quantity = 0) -> None:
        parsed = Quantity.parse(value)
        self._nanos = parsed._nanos
        self._format = parsed._format
        self._go = parsed._go

    # --- construction ---------------------------------------------------------------

    @classmethod
    def _make(cls, nanos: int, fmt: QuantityFormat, go: GoAmount | None = None) -> Quantity:
        q = object.__new__(cls)
        q._nanos = nanos
        q._format = fmt
        q._go = go
        return q

    def rebuilt_as(self, cls: type[_Q]) -> _Q:
        """The same quantity as an instance of a subclass (the CEL library marks its arithmetic results so)."""
        q = object.__new__(cls)
        q._nanos, q._format, q._go = self._nanos, self._format, self._go
        return q

    @classmethod
    def parse(cls, value: str | int | float | Quantity) -> Quantity:
        """Parse ``"40Gi"``, ``"500m"``, ``"1e3"``, an int or a float; raise :class:`QuantityError`."""
        if isinstance(value, Quantity):
            return value
        if isinstance(value, bool):
            raise QuantityError(f"invalid quantity {value!r}: a quantity is a number or a string, not a bool")
        if isinstance(value, int):
            return cls.from_int(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise QuantityError(f"invalid quantity {value!r}: not a finite number")
            value = repr(value)
        if not isinstance(value, str):
            raise QuantityError(f"invalid quantity {value!r}: expected a string or a number")
        nanos, fmt, go = _parse_text(value)
        return cls._make(nanos, fmt, go)

    @classmethod
    def from_int(cls, n: int, binary: bool = False) -> Quantity:
        fmt = QuantityFormat.BINARY_SI if binary else QuantityFormat.DECIMAL_SI
        go = goquantity.from_int(int(n)) if INT64_MIN <= n <= INT64_MAX else None
        return cls._make(int(n) * NANO, fmt, go)

    @classmethod
    def from_nanos(cls, nanos: int, fmt: QuantityFormat = QuantityFormat.DECIMAL_SI) -> Quantity:
        return cls._make(nanos, fmt)

    # --- accessors ------------------------------------------------------------------

    @property
    def format(self) -> QuantityFormat:
        return self._format

    @property
    def nanos(self) -> int:
        """The exact value in units of 10**-9."""
        return self._nanos

    def sign(self) -> int:
        return (self._nanos > 0) - (self._nanos < 0)

    def is_zero(self) -> bool:
        return self._nanos == 0

    def is_integer(self) -> bool:
        return self._nanos % NANO == 0

    def as_integer(self) -> int:
        """The value as an int64; :class:`QuantityError` if it has a fraction or does not fit."""
        if self._nanos % NANO:
            raise QuantityError(f"cannot convert value to integer: {self} is not an integer")
        value = self._nanos // NANO
        if not INT64_MIN <= value <= INT64_MAX:
            raise QuantityError(f"cannot convert value to integer: {self} is outside the int64 range")
        return value

    def as_approximate_float(self) -> float:
        try:
            return self._nanos / NANO
        except OverflowError:
            return math.copysign(math.inf, self._nanos)

    # --- as Kubernetes' CEL quantity library answers (from Go's representation) -----------

    @property
    def go_amount(self) -> GoAmount:
        """How Go holds this quantity: as parsed, or as the arithmetic that made it left it."""
        if self._go is None:
            self._go = Quantity.parse(str(self))._go
        assert self._go is not None
        return self._go

    def go_as_int64(self) -> int | None:
        """Go's ``AsInt64`` (CEL ``asInteger()``; ``isInteger()`` is whether it is not None): None for an
        ``inf.Dec`` or a negative scale even when the value is whole (``1.5Gi``, ``1000m``)."""
        return goquantity.as_int64(self.go_amount)

    def go_approximate_float(self) -> float:
        """Go's ``AsApproximateFloat64`` (CEL ``asApproximateFloat()``)."""
        return goquantity.approximate_float(self.go_amount)

    def ceil_integer(self) -> int:
        """Smallest integer >= the value."""
        return -((-self._nanos) // NANO)

    # --- arithmetic -----------------------------------------------------------------

    def _result_format(self, other: Quantity) -> QuantityFormat:
        # Go keeps the receiver's format, except that a zero receiver takes the argument's.
        return other._format if self._nanos == 0 else self._format

    def add(self, other: Quantity | int) -> Quantity:
        other = Quantity.parse(other)
        go = goquantity.add(self.go_amount, other.go_amount)
        return Quantity._make(self._nanos + other._nanos, self._result_format(other), go)

    def sub(self, other: Quantity | int) -> Quantity:
        other = Quantity.parse(other)
        go = goquantity.sub(self.go_amount, other.go_amount)
        # Go's int64 path is the value, also where its negation wrapped (x - (-2**63) adds -2**63)
        exact = goquantity.nanos(go) if not go.dec else self._nanos - other._nanos
        return Quantity._make(exact, self._result_format(other), go)

    def neg(self) -> Quantity:
        return Quantity._make(-self._nanos, self._format, goquantity.neg(self.go_amount))

    def mul(self, factor: int) -> Quantity:
        return Quantity._make(self._nanos * factor, self._format)

    def __add__(self, other: Quantity | int) -> Quantity:
        return self.add(other)

    def __sub__(self, other: Quantity | int) -> Quantity:
        return self.sub(other)

    def __neg__(self) -> Quantity:
        return self.neg()

    def compare_to(self, other: Quantity) -> int:
        return (self._nanos > other._nanos) - (self._nanos < other._nanos)

    def ceil_to_step(self, step: Quantity, minimum: Quantity | None = None) -> Quantity:
        """Round up to ``minimum + k*step`` (k >= 0), as DRA's ``requestPolicy.validRange`` does."""
        if step._nanos <= 0:
            raise QuantityError(f"step must be positive, not {step}")
        base = minimum._nanos if minimum is not None else 0
        if self._nanos <= base:
            return Quantity._make(base, self._format)
        steps = _ceil_div(self._nanos - base, step._nanos)
        return Quantity._make(base + steps * step._nanos, self._format)

    def ceil_to_valid_value(self, valid_values: Iterable[Quantity]) -> Quantity | None:
        """The smallest of ``valid_values`` that is >= self (DRA ``requestPolicy.validValues``), or None."""
        candidates = [v for v in valid_values if v._nanos >= self._nanos]
        return min(candidates, key=lambda v: v._nanos) if candidates else None

    def floor_to_step(self, step: Quantity, minimum: Quantity | None = None) -> Quantity:
        """Round down to ``minimum + k*step`` (k >= 0); values below ``minimum`` give ``minimum``."""
        if step._nanos <= 0:
            raise QuantityError(f"step must be positive, not {step}")
        base = minimum._nanos if minimum is not None else 0
        if self._nanos <= base:
            return Quantity._make(base, self._format)
        steps = (self._nanos - base) // step._nanos
        return Quantity._make(base + steps * step._nanos, self._format)

    # --- comparison -----------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Quantity):
            return self._nanos == other._nanos
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._nanos)

    def __lt__(self, other: Quantity) -> bool:
        return self._nanos < other._nanos

    def __le__(self, other: Quantity) -> bool:
        return self._nanos <= other._nanos

    def __gt__(self, other: Quantity) -> bool:
        return self._nanos > other._nanos

    def __ge__(self, other: Quantity) -> bool:
        return self._nanos >= other._nanos

    # --- text -----------------------------------------------------------------------

    def __str__(self) -> str:
        return canonical_string(self._nanos, self._format)

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r})"


def _binary_canonical(value: int) -> str:
    magnitude, power = abs(value), 0
    while power < len(_BINARY_BY_POWER) - 1 and magnitude % 1024 == 0:
        magnitude //= 1024
        power += 1
    sign = "-" if value < 0 else ""
    return f"{sign}{magnitude}{_BINARY_BY_POWER[power]}"


def canonical_string(nanos: int, fmt: QuantityFormat) -> str:
    """Go's ``Quantity.String()`` for a value of ``nanos * 10**-9`` in format ``fmt``."""
    if nanos == 0:
        return "0"
    if fmt is QuantityFormat.BINARY_SI and abs(nanos) >= 1024 * NANO and nanos % NANO == 0:
        return _binary_canonical(nanos // NANO)
    if fmt is QuantityFormat.BINARY_SI:
        fmt = QuantityFormat.DECIMAL_SI
    mantissa, exponent = nanos, -9
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    while exponent % 3:
        mantissa *= 10
        exponent -= 1
    if fmt is QuantityFormat.DECIMAL_SI and exponent in _DECIMAL_BY_EXPONENT:
        return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"
    return f"{mantissa}e{exponent}" if exponent else str(mantissa)


def _validate_quantity(value: Any) -> Quantity:
    """Pydantic hook; the ``invalid_quantity:`` prefix becomes the diagnostic code (see gpupolicy.policy.modelbase)."""
    try:
        if isinstance(value, (Quantity, str, int, float)):
            return Quantity.parse(value)
        raise QuantityError(f"invalid quantity {value!r}: expected a string such as 40Gi or a number")
    except QuantityError as err:
        raise ValueError(f"invalid_quantity: {err}") from None


QuantityField = Annotated[
    Quantity,
    PlainValidator(_validate_quantity),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": _QUANTITY_RE.pattern}),
]
"""A pydantic field type: accepts ``"40Gi"`` or ``1024`` from YAML, serializes to the canonical string."""
