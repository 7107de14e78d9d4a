"""How Go holds a ``resource.Quantity`` inside (k8s.io/apimachinery ``resource/quantity.go`` and ``amount.go``).

The value of a :class:`gpupolicy.policy.quantity.Quantity` is exact and independent of this, but three CEL functions
of Kubernetes' quantity library answer from Go's internal representation, not from the value:

* ``isInteger()``/``asInteger()`` use ``AsInt64``, which only succeeds for an ``int64Amount`` (value, scale) with a
  scale >= 0: ``quantity("1.5Gi")`` (an ``inf.Dec``), ``quantity("1000m")`` (1000 at scale -3) and
  ``quantity("1.0")`` are not integers there, ``quantity("1k")`` is;
* ``asApproximateFloat()`` multiplies the unscaled value by ``math.Pow10`` of the scale, which can round
  differently from dividing the exact value.

``ParseQuantity`` takes the fast ``int64Amount`` path when the digits fit (at most 18 for decimal suffixes, fewer
for binary ones, no fraction with a binary suffix, scale >= nano), else an ``inf.Dec`` rounded up to nano scale.
``Add``/``Sub`` stay ``int64Amount`` unless the result overflows or either side is an ``inf.Dec``.
"""

from __future__ import annotations

from dataclasses import dataclass

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_MAX_INT64_FACTORS = 18  # resource.maxInt64Factors
_NANO = -9


@dataclass(frozen=True)
class GoAmount:
    """``dec``: an ``inf.Dec``; else an ``int64Amount``. The value is ``unscaled * 10**exponent``."""

    dec: bool
    unscaled: int
    exponent: int


def parsed(
    negative: bool, int_digits: str, frac_digits: str, base: int, exponent: int, binary: bool, nanos: int, capped: bool
) -> GoAmount:
    """The representation ``ParseQuantity`` builds for a text whose parts our parser found (``nanos``: its exact
    value in units of 10**-9, after Go's rounding up and the BinarySI cap)."""
    num = int_digits.lstrip("0") or "0"
    denom = frac_digits
    if not binary:
        scale, precision, mantissa = exponent, _MAX_INT64_FACTORS - (len(num) + len(denom)), 1
    elif exponent >= 0 and not denom:
        scale, mantissa = 0, 1 << exponent
        precision = 15 - len(num) - exponent * 3 // 10 - 1
    else:
        scale, precision, mantissa = 0, -1, 1
    if precision >= 0:
        scale -= len(denom)
        if scale >= _NANO:
            value = _multiply(int(num + denom), mantissa)
            if value is not None:
                return GoAmount(False, -value if negative else value, scale)
    if capped:  # the magnitude capped at maxAllowed, an inf.Dec at scale 0
        return GoAmount(True, INT64_MAX if nanos > 0 else -INT64_MAX, 0)
    if nanos == 0:  # not rounded: keeps the scale of its digits
        return GoAmount(True, 0, -len(denom) + (exponent if base == 10 else 0))
    return GoAmount(True, nanos, _NANO)  # rounded up to nano scale


def from_int(n: int) -> GoAmount:
    """``resource.NewQuantity(n, ...)``."""
    return GoAmount(False, n, 0)


def _multiply(a: int, b: int) -> int | None:
    """Go's ``int64Multiply``: None when the product overflows int64."""
    if a in (0, 1) or b in (0, 1):
        return a * b
    if INT64_MIN in (a, b):
        return None
    product = a * b
    return product if INT64_MIN <= product <= INT64_MAX else None


def _scale_up(value: int, scale: int) -> int | None:
    """Go's ``positiveScaleInt64``: ``value * 10**scale``, None on overflow."""
    result = value * 10**scale
    return result if INT64_MIN <= result <= INT64_MAX else None


def _int64_add(a: GoAmount, b: GoAmount) -> GoAmount | None:
    """Go's ``int64Amount.Add``: None when it overflows (Go then falls back to ``inf.Dec``)."""
    if b.unscaled == 0:
        return a
    if a.unscaled == 0:
        return b
    if a.exponent == b.exponent:
        total, exponent = a.unscaled + b.unscaled, a.exponent
    elif a.exponent > b.exponent:
        shifted = _scale_up(a.unscaled, a.exponent - b.exponent)
        if shifted is None:
            return None
        total, exponent = shifted + b.unscaled, b.exponent
    else:
        shifted = _scale_up(b.unscaled, b.exponent - a.exponent)
        if shifted is None:
            return None
        total, exponent = a.unscaled + shifted, a.exponent
    return GoAmount(False, total, exponent) if INT64_MIN <= total <= INT64_MAX else None


def add(a: GoAmount, b: GoAmount) -> GoAmount:
    """``Quantity.Add``: exact, as an ``int64Amount`` while both are and the sum fits, else an ``inf.Dec`` whose
    scale is the larger of the two."""
    if not a.dec and not b.dec:
        total = _int64_add(a, b)
        if total is not None:
            return total
    exponent = min(a.exponent, b.exponent)
    unscaled = a.unscaled * 10 ** (a.exponent - exponent) + b.unscaled * 10 ** (b.exponent - exponent)
    return GoAmount(True, unscaled, exponent)


def neg(a: GoAmount) -> GoAmount:
    value = -a.unscaled
    if not a.dec and value > INT64_MAX:  # Go's int64 negation wraps
        value = INT64_MIN
    return GoAmount(a.dec, value, a.exponent)


def sub(a: GoAmount, b: GoAmount) -> GoAmount:
    """``Quantity.Sub``: ``int64Amount.Sub`` adds ``-b`` negated in int64 (so subtracting -2**63 adds -2**63, as
    Go's negation wraps); when that overflows, the exact difference as an ``inf.Dec``."""
    if not a.dec and not b.dec:
        total = _int64_add(a, neg(b))
        if total is not None:
            return total
    exponent = min(a.exponent, b.exponent)
    unscaled = a.unscaled * 10 ** (a.exponent - exponent) - b.unscaled * 10 ** (b.exponent - exponent)
    return GoAmount(True, unscaled, exponent)


def nanos(a: GoAmount) -> int:
    """The value of an ``int64Amount`` (its scale is never below nano) in units of 10**-9."""
    return a.unscaled * int(10 ** (a.exponent - _NANO))


def as_int64(a: GoAmount) -> int | None:
    """``Quantity.AsInt64``: only an ``int64Amount`` at a scale >= 0 that fits."""
    if a.dec or a.exponent < 0:
        return None
    return _scale_up(a.unscaled, a.exponent)


def approximate_float(a: GoAmount) -> float:
    """``Quantity.AsApproximateFloat64``: the unscaled value as a float64 times ``math.Pow10(exponent)``."""
    try:
        base = float(a.unscaled)
    except OverflowError:
        base = float("inf") if a.unscaled > 0 else float("-inf")
    if a.exponent == 0:
        return base
    return base * pow10(a.exponent)


def pow10(n: int) -> float:
    """Go's ``math.Pow10``, table for table (its products round as Go's do)."""
    if 0 <= n <= 308:
        return float(f"1e{32 * (n // 32)}") * float(f"1e{n % 32}")
    if -323 <= n < 0:
        return float(f"1e-{32 * (-n // 32)}") / float(f"1e{-n % 32}")
    return float("inf") if n > 0 else 0.0
