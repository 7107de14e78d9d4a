"""A typed generator of device-selector CEL expressions, for the generated CEL differential test (issue 16).

The generator knows what the test's devices publish (``STRINGS``, ``VERSIONS``, ``QUANTITIES`` in ``celvocab.py``: the
attributes and capacities of the simulated H100 nodes of ``rendered_slices()``, some present on only part of the
devices) and builds expressions of a requested static type (``bool``, ``int``, ``uint``, ``double``, ``string``,
``bytes``, lists, maps, ``quantity``, ``semver``, ``ip``, ``cidr``, ``url``), mostly well typed, and with a fixed
share of deliberate mistakes: an operand of another type, a missing key or domain, an unknown function, a wrong
arity, a non-bool result, a literal out of range. Every construct of the selector language appears: attribute and
capacity reads (``.x``, ``["x"]``, ``has``, ``in``, ``.?x``/``[?"x"]`` with ``orValue``), comparisons, logic and
ternaries with errors inside, arithmetic near the int64/uint64 limits, the strings extension, ``matches``/``find``,
``format``, the quantity, semver, IP, CIDR and URL libraries, list and map literals, the one- and two-variable
comprehensions (nested, over lists and maps), ``cel.bind``, conversions, the lists and sets libraries, optional
literals, durations and timestamps.

The builders of non-bool values live in ``celgen_values.py`` (a mixin). :class:`CelGen` draws from a
``random.Random``, so a seed fixes the whole sequence (:func:`generate`); :func:`selector_expressions` wraps it
as a Hypothesis strategy (Hypothesis supplies the seeded random).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import strategies as st

from tests.e2e.celgen_values import ValueExpressions
from tests.e2e.celvocab import (
    CIDRS,
    CIDRS_BAD,
    DOUBLES,
    DRIVER,
    INTS,
    INTS_OUT_OF_RANGE,
    IPS,
    IPS_BAD,
    K8S,
    K8S_STRINGS,
    LIB,
    MISSING,
    QUANTITIES,
    QUANTITY_BAD,
    QUANTITY_TEXT,
    REGEXES,
    SCALARS,
    SEMVER_BAD,
    SEMVER_LOOSE,
    SEMVER_TEXT,
    STRING_LITERALS,
    STRINGS,
    TYPE_NAMES,
    UINTS,
    URLS,
    URLS_BAD,
    VERSIONS,
    A,
    C,
    Scope,
)


class CelGen(ValueExpressions):
    """Builds CEL expressions of a given static type; ``ill`` is the share of deliberate type mistakes."""

    def __init__(self, rnd: random.Random, ill: float = 0.12, max_depth: int = 4) -> None:
        self.r = rnd
        self.ill = ill
        self.max_depth = max_depth
        self._names = 0

    # --- helpers -------------------------------------------------------------------------------------------------
    def pick(self, options: list[str]) -> str:
        return self.r.choice(options)

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def var(self) -> str:
        self._names += 1
        return self.pick(["x", "y", "e", "k", "v", "i"]) + str(self._names % 7)

    def any_type(self) -> str:
        t = self.pick([*SCALARS, *SCALARS, *LIB, "list", "map", "attr"])
        if t == "list":
            return "list(" + self.pick(["int", "string", "double", "bool", "quantity"]) + ")"
        if t == "map":
            return "map(string," + self.pick(["int", "string"]) + ")"
        return t

    def of(self, t: str, d: int, sc: Scope) -> str:
        """An expression of static type ``t`` (or, with probability ``ill``, of another type)."""
        if self.chance(self.ill / 3) and d > 0:
            t = self.any_type()
        if d <= 0 or self.chance(0.25):
            return self.leaf(t, sc)
        if t.startswith("list("):
            return self.list_of(t[5:-1], d, sc)
        if t.startswith("map("):
            return self.map_of(t[4:-1].split(",", 1)[1], d, sc)
        builder: Callable[[int, Scope], str] = getattr(self, "t_" + t)
        return builder(d - 1, sc)

    def leaf(self, t: str, sc: Scope) -> str:
        vars_ = [name for name, vt in sc.items() if vt == t or (vt == "attr" and self.chance(0.3))]
        if vars_ and self.chance(0.5):
            return self.pick(vars_)
        if t == "bool":
            return self.pick(["true", "false", "device.allowMultipleAllocations"])
        if t == "int":
            return self.pick(INTS + (INTS_OUT_OF_RANGE if self.chance(self.ill) else []))
        if t == "uint":
            return self.pick(UINTS)
        if t == "double":
            return self.pick(DOUBLES)
        if t == "string":
            return self.pick(STRING_LITERALS + ["device.driver"])
        if t == "bytes":
            return self.pick(['b"abc"', 'b""', "b'\\xff'", 'bytes("é")'])
        if t == "attr":
            return self.attr_string()
        if t in LIB:
            return self.lib_literal(t)
        if t.startswith("list("):
            return "[" + ", ".join(self.leaf(t[5:-1], sc) for _ in range(self.r.randint(0, 3))) + "]"
        if t.startswith("map("):
            value = t[4:-1].split(",", 1)[1]
            return "{" + ", ".join(f'"{k}": {self.leaf(value, sc)}' for k in "abc"[: self.r.randint(0, 3)]) + "}"
        return "true"

    def lib_literal(self, t: str) -> str:
        bad = self.chance(self.ill)
        if t == "quantity":
            if self.chance(0.5):
                return self.capacity()
            return f'quantity("{self.pick(QUANTITY_BAD if bad else QUANTITY_TEXT)}")'
        if t == "semver":
            if self.chance(0.5):
                return self.version_attr()
            if self.chance(0.2):
                return f'semver("{self.pick(SEMVER_LOOSE)}", true)'
            return f'semver("{self.pick(SEMVER_BAD if bad else SEMVER_TEXT)}")'
        if t == "ip":
            if self.chance(0.2):
                return f'cidr("{self.pick(CIDRS)}").ip()'
            return f'ip("{self.pick(IPS_BAD if bad else IPS)}")'
        if t == "cidr":
            return f'cidr("{self.pick(CIDRS_BAD if bad else CIDRS)}")'
        return f'url("{self.pick(URLS_BAD if bad else URLS)}")'

    # --- device reads ----------------------------------------------------------------------------------------------
    def access(self, base: str, key: str) -> str:
        form = self.r.randint(0, 9)
        if form <= 5:
            return f"{base}.{key}"
        if form <= 8:
            return f'{base}["{key}"]'
        return f'{base}.?{key}.orValue("")' if not base.startswith("device.cap") else f"{base}.{key}"

    def attr_string(self) -> str:
        roll = self.r.random()
        if roll < 0.08:
            return self.access(A, self.pick(MISSING))
        if roll < 0.12:
            return self.access('device.attributes["other.example.com"]', "x")
        if roll < 0.25:
            return self.access(K8S, self.pick(K8S_STRINGS))
        return self.access(A, self.pick([name for name, _ in STRINGS]))

    def version_attr(self) -> str:
        return self.access(A, self.pick(VERSIONS))

    def capacity(self) -> str:
        if self.chance(0.05):
            return f"{C}.{self.pick(MISSING)}"
        return self.access(C, self.pick([name for name, _ in QUANTITIES]))

    def guard(self) -> str:
        """A presence test: ``has``, ``in``, an optional read."""
        key = self.pick([name for name, _ in STRINGS] + [q for q, _ in QUANTITIES] + MISSING)
        base = C if any(key == q for q, _ in QUANTITIES) else A
        form = self.r.randint(0, 5)
        if form == 0:
            return f"has({base}.{key})"
        if form == 1:
            return f'"{key}" in {base}'
        if form == 2:
            return f"{base}.?{key}.hasValue()"
        if form == 3:
            return f'{base}[?"{key}"].hasValue()'
        if form == 4:
            return f'"{self.pick([DRIVER, "other.io", "resource.kubernetes.io"])}" in device.attributes'
        return f'has(device.attributes["{self.pick([DRIVER, "x.io"])}"].{key})'

    # --- typed builders ------------------------------------------------------------------------------------------
    def t_bool(self, d: int, sc: Scope) -> str:
        k = self.r.randint(0, 27)
        if k == 0:
            return f"{self.of('bool', d, sc)} && {self.of('bool', d, sc)}"
        if k == 1:
            return f"{self.of('bool', d, sc)} || {self.of('bool', d, sc)}"
        if k == 2:
            return f"!{self.paren(self.of('bool', d, sc))}"
        if k == 3:
            return f"({self.of('bool', d, sc)} ? {self.of('bool', d, sc)} : {self.of('bool', d, sc)})"
        if k in (4, 5):
            t = self.pick(["int", "uint", "double", "string", "int", "string", "bytes", "bool"])
            op = self.pick(["==", "!=", "<", "<=", ">", ">="])
            return f"{self.of(t, d, sc)} {op} {self.of(self.other(t), d, sc)}"
        if k == 6:
            t = self.any_type()
            return f"{self.of(t, d, sc)} {self.pick(['==', '!='])} {self.of(self.other(t), d, sc)}"
        if k in (7, 8):
            s = self.attr_string() if self.chance(0.6) else self.of("string", d, sc)
            fn = self.pick(["startsWith", "endsWith", "contains", "matches"])
            arg = f'"{self.pick(REGEXES)}"' if fn == "matches" else self.of("string", d, sc)
            return f"{s}.{fn}({arg})"
        if k == 9:
            return self.guard()
        if k == 10:
            return f"{self.guard()} && {self.of('bool', d, sc)}"
        if k == 11:
            t = self.pick(["int", "string", "double", "quantity", "semver"])
            return f"{self.of(t, d, sc)} in {self.of('list(' + self.other(t) + ')', d, sc)}"
        if k == 12:
            return f"{self.of('string', d, sc)} in {self.of('map(string,int)', d, sc)}"
        if k == 13:
            fn = self.pick(["isQuantity", "isSemver", "isIP", "isCIDR", "isURL"])
            texts = {
                "isQuantity": QUANTITY_TEXT + QUANTITY_BAD,
                "isSemver": SEMVER_TEXT + SEMVER_BAD,
                "isIP": IPS + IPS_BAD,
                "isCIDR": CIDRS + CIDRS_BAD,
                "isURL": URLS + URLS_BAD,
            }[fn]
            arg = f'"{self.pick(texts)}"' if self.chance(0.7) else self.of("string", d, sc)
            if fn == "isSemver" and self.chance(0.2):
                return f"{fn}({arg}, true)"
            return f"{fn}({arg})"
        if k == 14:
            q = self.of("quantity", d, sc)
            return self.pick(
                [
                    f"{q}.isGreaterThan({self.of('quantity', d, sc)})",
                    f"{q}.isLessThan({self.of('quantity', d, sc)})",
                    f"{q}.isInteger()",
                    f"{q}.compareTo({self.of('quantity', d, sc)}) {self.pick(['>=', '<', '=='])} 0",
                ]
            )
        if k == 15:
            v = self.of("semver", d, sc)
            fn = self.pick(["isGreaterThan", "isLessThan", "compareTo"])
            tail = " >= 0" if fn == "compareTo" else ""
            return f"{v}.{fn}({self.of('semver', d, sc)}){tail}"
        if k == 16:
            i = self.of("ip", d, sc)
            fn = self.pick(
                ["isLoopback", "isUnspecified", "isLinkLocalMulticast", "isLinkLocalUnicast", "isGlobalUnicast"]
            )
            if self.chance(0.3):
                return f'ip.isCanonical("{self.pick(IPS + IPS_BAD)}")'
            return f"{i}.{fn}()"
        if k == 17:
            c = self.of("cidr", d, sc)
            if self.chance(0.5):
                arg = self.of("ip", d, sc) if self.chance(0.6) else f'"{self.pick(IPS)}"'
                return f"{c}.containsIP({arg})"
            arg = self.of("cidr", d, sc) if self.chance(0.6) else f'"{self.pick(CIDRS)}"'
            return f"{c}.containsCIDR({arg})"
        if k in (18, 19):
            return self.comprehension("bool", d, sc)
        if k == 20:
            t = self.pick(["int", "string", "double"])
            lst = self.of(f"list({t})", d, sc)
            return self.pick(
                [
                    f"{lst}.isSorted()",
                    f"sets.contains({lst}, {self.of(f'list({t})', d, sc)})",
                    f"sets.intersects({lst}, {self.of(f'list({t})', d, sc)})",
                    f"sets.equivalent({lst}, {self.of(f'list({t})', d, sc)})",
                    f"{lst}.includes({self.of(t, d, sc)})",
                ]
            )
        if k == 21:
            return self.bind("bool", d, sc)
        if k == 22:
            return self.pick(
                [
                    f"bool({self.pick(['true', 'false', 'yes', '1', 'TRUE', 't', 'True'])!r})".replace("'", '"'),
                    f"bool({self.of('string', d, sc)})",
                    f"dyn({self.of('bool', d, sc)}) == true",
                    f"type({self.of(self.any_type(), d, sc)}) == {self.pick(TYPE_NAMES)}",
                    f"{self.of('string', d, sc)}.size() {self.pick(['==', '>', '<='])} {self.of('int', d, sc)}",
                ]
            )
        if k == 23:
            return self.optional_bool(d, sc)
        if k == 24:
            return self.pick(
                [
                    f'duration("{self.pick(["1h", "30m", "1s", "bad", "-1h30m"])}") > duration("1m")',
                    f'timestamp("{self.pick(["2024-01-01T00:00:00Z", "2025-06-01T12:00:00+02:00", "bad"])}")'
                    ' < timestamp("2025-01-01T00:00:00Z")',
                    'timestamp("2024-01-01T00:00:00Z").getFullYear() == 2024',
                    f'duration("{self.pick(["1h", "90s"])}").getSeconds() {self.pick([">", "=="])} 60',
                ]
            )
        if k == 25:
            return self.mistake("bool", d, sc)
        if k == 26:
            return f"{self.of('int', d, sc)} {self.pick(['<', '>=', '=='])} {self.of('int', d, sc)}"
        return self.attr_cmp(d, sc)

    def attr_cmp(self, d: int, sc: Scope) -> str:
        """The common selector shapes: an attribute or capacity against a constant."""
        roll = self.r.randint(0, 4)
        if roll == 0:
            return f"{self.attr_string()} == {self.pick(STRING_LITERALS)}"
        if roll == 1:
            return f'{self.version_attr()}.compareTo(semver("{self.pick(SEMVER_TEXT)}")) {self.pick([">=", "<"])} 0'
        if roll == 2:
            return f'{self.capacity()}.compareTo(quantity("{self.pick(QUANTITY_TEXT)}")) {self.pick([">=", "<"])} 0'
        if roll == 3:
            return f'{self.capacity()} {self.pick(["==", "!="])} quantity("{self.pick(QUANTITY_TEXT)}")'
        return f"{self.attr_string()} {self.pick(['==', '!=', '<', '>='])} {self.of(self.pick(SCALARS), d, sc)}"

    def optional_bool(self, d: int, sc: Scope) -> str:
        return self.pick(
            [
                f"optional.of({self.of('int', d, sc)}).hasValue()",
                "optional.none().hasValue()",
                f"optional.ofNonZeroValue({self.of('string', d, sc)}).hasValue()",
                f'{A}.?{self.pick(MISSING + ["type"])}.orValue({self.of("string", d, sc)}) == "gpu"',
                f'{self.of("map(string,int)", d, sc)}[?"a"].orValue(0) > 0',
                f"[?optional.of({self.of('int', d, sc)}), ?optional.none()].size() == 1",
                f'{{?"a": optional.of({self.of("int", d, sc)})}}.size() == 1',
                f"optional.of(1).or(optional.none()).value() == {self.of('int', d, sc)}",
            ]
        )

    # --- comprehensions, bind, mistakes ----------------------------------------------------------------------------
    def comprehension(self, result: str, d: int, sc: Scope) -> str:
        x = self.var()
        roll = self.r.randint(0, 5)
        if roll == 0:
            rng, elem = A, "string"  # the keys of the driver's attribute map
        elif roll == 1:
            rng, elem = C, "string"
        elif roll == 2:
            rng, elem = "device.attributes", "string"
        else:
            elem = self.pick(["int", "string", "double", "quantity"])
            rng = self.of(f"list({elem})", d, sc)
        inner = {**sc, x: elem}
        if result == "int":
            return f"{self.paren(rng)}.filter({x}, {self.of('bool', d, inner)}).size()"
        macro = self.pick(["all", "exists", "exists_one", "all", "exists", "existsOne", "two"])
        if macro == "two":
            y = self.var()
            inner2 = {**sc, x: "int" if not rng.startswith("device") else "string", y: elem}
            fn = self.pick(["all", "exists", "existsOne"])
            return f"{self.paren(rng)}.{fn}({x}, {y}, {self.of('bool', d, inner2)})"
        return f"{self.paren(rng)}.{macro}({x}, {self.of('bool', d, inner)})"

    def bind(self, result: str, d: int, sc: Scope) -> str:
        x = self.var()
        t = self.pick(["int", "string", "quantity", "list(int)", "attr"])
        init = self.of(t, d, sc) if t != "attr" else A
        inner = {**sc, x: t if t != "attr" else "map(string,attr)"}
        body = self.of(result, d, inner)
        if t == "attr" and result == "bool":
            body = f'{x}.{self.pick([s for s, _ in STRINGS])} == "gpu" || {body}'
        return f"cel.bind({x}, {init}, {body})"

    def mistake(self, t: str, d: int, sc: Scope) -> str:
        """Something that must not compile (or must fail at run time) in a plausible-looking selector."""
        return self.pick(
            [
                f"{self.of('int', d, sc)}",  # not a bool
                "dyn(true)",
                f"{A}.{self.pick(MISSING)}",
                f"nosuch({self.of('int', d, sc)})",
                f"claim.name == {self.of('string', d, sc)}",
                f"{self.of('string', d, sc)}.startsWith()",
                f"{self.of('quantity', d, sc)}.sign() == 1",
                f"{self.of('int', d, sc)} + {self.of('string', d, sc)} == 1",
                f"{self.of('int', d, sc)} == {self.of('double', d, sc)}",
                "[1, 'a'].size() == 2",
                "device.nosuch == 1",
                f'"{"a" * 3}" {self.pick(["<", "=="])} b"a"',
                f"{self.of('bool', d, sc)} ? 1 : 'a'",
                "!" * self.pick([2, 20, 120]) + "true",
                "(" * 40 + "true" + ")" * 40,
                " + ".join(["1"] * self.pick([50, 210])) + " > 0",
                f"{self.of('list(int)', d, sc)}.all(x, x)",
            ]
        )

    def paren(self, expr: str) -> str:
        return expr if expr.replace(".", "").replace("_", "").isalnum() else f"({expr})"

    def other(self, t: str) -> str:
        """Usually ``t``; with probability ``ill`` another type (a mixed comparison or literal)."""
        return self.any_type() if self.chance(self.ill) else t

    def selector(self) -> str:
        """One top-level selector: a bool expression, rarely something that is not a bool."""
        if self.chance(0.02):
            return self.of(self.any_type(), self.max_depth - 1, {})
        return self.of("bool", self.r.randint(1, self.max_depth), {})


def generate(seed: int, count: int, max_len: int = 2000) -> list[str]:
    """``count`` distinct selectors from ``seed`` (the same list every time for the same arguments)."""
    gen = CelGen(random.Random(seed))
    seen: dict[str, None] = {}
    while len(seen) < count:
        expression = gen.selector()
        if len(expression) <= max_len:
            seen.setdefault(expression, None)
    return list(seen)


@st.composite
def selector_expressions(draw: st.DrawFn) -> str:
    """A Hypothesis strategy of selectors (the random comes from Hypothesis, so ``derandomize`` fixes it)."""
    return CelGen(draw(st.randoms(use_true_random=False))).selector()
