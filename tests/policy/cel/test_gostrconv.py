"""Go's strconv parsers as cel-go's string conversions use them; every row checked against Go 1.26's strconv."""

from __future__ import annotations

import math

import pytest

from gpupolicy.policy.cel.runtime import gostrconv

# (input, strconv.ParseInt(s, 10, 64), strconv.ParseUint(s, 10, 64), strconv.ParseFloat(s, 64)); None is an error.
TABLE: list[tuple[str, int | None, int | None, float | str | None]] = [
    ("", None, None, None),
    (" 1", None, None, None),
    ("1 ", None, None, None),
    ("1", 1, 1, 1.0),
    ("+1", 1, None, 1.0),
    ("-1", -1, None, -1.0),
    ("-0", 0, None, -0.0),
    ("+", None, None, None),
    ("-", None, None, None),
    ("1_000", None, None, 1000.0),
    ("0x10", None, None, None),
    ("0x1p-2", None, None, 0.25),
    ("0X1P-2", None, None, 0.25),
    ("-0x1.8p1", None, None, -3.0),
    ("0x1", None, None, None),
    ("0x", None, None, None),
    ("0x.8p1", None, None, 1.0),
    ("0x1.p1", None, None, 2.0),
    ("0x_1p0", None, None, 1.0),
    ("0x1_0p0", None, None, 16.0),
    ("0x1__0p0", None, None, None),
    ("0x1p1_0", None, None, 1024.0),
    ("1e400", None, None, None),
    ("-1e400", None, None, None),
    ("1e-400", None, None, 0.0),
    ("1.7976931348623157e308", None, None, 1.7976931348623157e308),
    ("1.7976931348623159e308", None, None, None),
    ("1.7976931348623158e308", None, None, 1.7976931348623157e308),
    ("inf", None, None, math.inf),
    ("Inf", None, None, math.inf),
    ("-INF", None, None, -math.inf),
    ("+infinity", None, None, math.inf),
    ("Infinity", None, None, math.inf),
    ("infin", None, None, None),
    ("nan", None, None, "nan"),
    ("NaN", None, None, "nan"),
    ("-nan", None, None, None),
    ("+nan", None, None, None),
    ("nana", None, None, None),
    ("\u0661\u0662\u0663", None, None, None),
    ("1.", None, None, 1.0),
    (".5", None, None, 0.5),
    (".", None, None, None),
    ("1e", None, None, None),
    ("1e+", None, None, None),
    ("1e+5", None, None, 100000.0),
    ("1E5", None, None, 100000.0),
    ("1.e5", None, None, 100000.0),
    (".e5", None, None, None),
    ("1_0.0_1", None, None, 10.01),
    ("1__0", None, None, None),
    ("_1", None, None, None),
    ("1_", None, None, None),
    ("1._5", None, None, None),
    ("1_.5", None, None, None),
    ("1e1_0", None, None, 10000000000.0),
    ("1e_1", None, None, None),
    ("9223372036854775807", 9223372036854775807, 9223372036854775807, 9.223372036854776e18),
    ("9223372036854775808", None, 9223372036854775808, 9.223372036854776e18),
    ("-9223372036854775808", -9223372036854775808, None, -9.223372036854776e18),
    ("-9223372036854775809", None, None, -9.223372036854776e18),
    ("18446744073709551615", None, 18446744073709551615, 1.8446744073709552e19),
    ("18446744073709551616", None, None, 1.8446744073709552e19),
    ("00012", 12, 12, 12.0),
    ("1.5", None, None, 1.5),
    ("0b101", None, None, None),
    ("0o17", None, None, None),
    ("0b1_0", None, None, None),
    ("1p3", None, None, None),
    ("0x1e3", None, None, None),
    ("0x1e3p0", None, None, 483.0),
    ("0xg", None, None, None),
    ("0x1.8", None, None, None),
    ("4.9e-324", None, None, 5e-324),
    ("2.4703282292062327e-324", None, None, 0.0),
    ("2.4703282292062328e-324", None, None, 5e-324),
    ("0x1p-1074", None, None, 5e-324),
    ("0x1p-1075", None, None, 0.0),
    ("0x1.8p-1075", None, None, 5e-324),
    ("0x1p1023", None, None, 8.98846567431158e307),
    ("0x1p1024", None, None, None),
    ("0x1.fffffffffffff8p1023", None, None, None),
    ("0x1.fffffffffffff7p1023", None, None, 1.7976931348623157e308),
    ("1_000.5", None, None, 1000.5),
    ("12345678901234567890123", None, None, 1.2345678901234568e22),
    ("0.000000000000000000000000000001", None, None, 1e-30),
    ("\t1", None, None, None),
    ("1\n", None, None, None),
    ("\uff11", None, None, None),
    ("1e0000000000000000000001", None, None, 10.0),
    ("1e-99999999999", None, None, 0.0),
    ("0x1p-99999999", None, None, 0.0),
]


@pytest.mark.parametrize(("text", "want_int", "want_uint", "want_float"), TABLE)
def test_go_strconv(text: str, want_int: int | None, want_uint: int | None, want_float: float | str | None) -> None:
    assert gostrconv.parse_int(text) == want_int
    assert gostrconv.parse_uint(text) == want_uint
    got = gostrconv.parse_float(text)
    if want_float == "nan":
        assert got is not None and math.isnan(got)
    elif want_float is None:
        assert got is None
    else:
        assert got is not None and got == want_float
        assert math.copysign(1.0, got) == math.copysign(1.0, float(want_float))
