"""cel-go's cost arithmetic (``checker.CostEstimate`` and ``checker.SizeEstimate``): ``(min, max)`` ranges of
unsigned 64-bit integers whose sums and products saturate at ``2**64 - 1`` instead of overflowing, and the
cost factors and base costs of ``cel-go/common/cost.go``.
"""

from __future__ import annotations

import math

UINT64_MAX = (1 << 64) - 1
_TWO_TO_64 = math.ldexp(1.0, 64)

Est = tuple[int, int]  # (min, max): a size estimate or a cost estimate, as cel-go keeps both

SELECT_AND_IDENT_COST = 1
CONST_COST = 0
LIST_CREATE_BASE_COST = 10
MAP_CREATE_BASE_COST = 30
STRUCT_CREATE_BASE_COST = 40
STRING_TRAVERSAL_COST_FACTOR = 0.1
REGEX_STRING_LENGTH_COST_FACTOR = 0.25

UNKNOWN: Est = (0, UINT64_MAX)
ONE: Est = (1, 1)
ZERO: Est = (0, 0)


def fixed(n: int) -> Est:
    return (n, n)


def add_u64(x: int, y: int) -> int:
    return UINT64_MAX if y > 0 and x > UINT64_MAX - y else x + y


def mul_u64(x: int, y: int) -> int:
    return UINT64_MAX if y != 0 and x > UINT64_MAX // y else x * y


def factor_u64(x: int, y: float) -> int:
    """``multiplyByCostFactor``: ``x * y`` rounded up, in float64 as Go computes it, saturating."""
    xf = float(x)
    if xf > 0 and y > 0 and xf > _TWO_TO_64 / y:
        return UINT64_MAX
    ceil = math.ceil(xf * y)
    return UINT64_MAX if ceil >= _TWO_TO_64 else int(ceil)


def add(a: Est, b: Est) -> Est:
    return (add_u64(a[0], b[0]), add_u64(a[1], b[1]))


def mul(a: Est, b: Est) -> Est:
    return (mul_u64(a[0], b[0]), mul_u64(a[1], b[1]))


def factor(a: Est, y: float) -> Est:
    return (factor_u64(a[0], y), factor_u64(a[1], y))


def union(a: Est, b: Est) -> Est:
    return (min(a[0], b[0]), max(a[1], b[1]))


def total(*parts: Est) -> Est:
    out = ZERO
    for part in parts:
        out = add(out, part)
    return out
