"""The value-typed builders of the CEL expression generator: ``int``, ``uint``, ``double``, ``string``, ``bytes``,
the library types, lists and maps. A mixin of :class:`tests.e2e.celgen.CelGen`, which supplies ``of``, ``leaf``,
``pick``, ``chance``, ``var`` and the bool, comprehension and ``cel.bind`` builders these call."""

from __future__ import annotations

from typing import Any

from tests.e2e.celvocab import (
    FORMATS,
    REGEXES,
    URL_GETTERS,
    A,
    Scope,
)


class ValueExpressions:
    """Builders of expressions of a non-bool static type; ``d`` is the depth left, ``sc`` the variables in scope."""

    # Supplied by CelGen.
    r: Any
    of: Any
    leaf: Any
    pick: Any
    chance: Any
    var: Any
    paren: Any
    attr_string: Any
    lib_literal: Any
    comprehension: Any
    bind: Any
    ill: float

    def t_int(self, d: int, sc: Scope) -> str:
        k = self.r.randint(0, 14)
        if k <= 2:
            op = self.pick(["+", "-", "*", "/", "%"])
            return f"{self.paren(self.of('int', d, sc))} {op} {self.paren(self.of('int', d, sc))}"
        if k == 3:
            return f"-{self.paren(self.of('int', d, sc))}"
        if k == 4:
            return f"size({self.of(self.pick(['string', 'bytes', 'list(int)', 'map(string,int)']), d, sc)})"
        if k == 5:
            return f"{self.of(self.pick(['string', 'list(string)']), d, sc)}.size()"
        if k == 6:
            src = self.pick(["uint", "double", "string", "int"])
            if src == "string" and self.chance(0.5):
                return f'int("{self.pick(["12", "-3", " 1", "1_000", "0x10", "9223372036854775808", "1.5"])}")'
            return f"int({self.of(src, d, sc)})"
        if k == 7:
            return self.pick(
                [
                    f"{self.of('quantity', d, sc)}.asInteger()",
                    f"sign({self.of('quantity', d, sc)})",
                    f"{self.of('quantity', d, sc)}.compareTo({self.of('quantity', d, sc)})",
                    f"{self.of('semver', d, sc)}.{self.pick(['major', 'minor', 'patch'])}()",
                    f"{self.of('ip', d, sc)}.family()",
                    f"{self.of('cidr', d, sc)}.prefixLength()",
                ]
            )
        if k == 8:
            s = self.of("string", d, sc)
            fn = self.pick(["indexOf", "lastIndexOf"])
            extra = f", {self.of('int', d, sc)}" if self.chance(0.3) else ""
            return f"{s}.{fn}({self.of('string', d, sc)}{extra})"
        if k == 9:
            lst = self.of("list(int)", d, sc)
            return self.pick(
                [
                    f"{lst}.sum()",
                    f"{lst}.min()",
                    f"{lst}.max()",
                    f"{lst}.indexOf({self.of('int', d, sc)})",
                    f"{lst}[{self.of('int', d, sc)}]",
                    f"math.greatest({self.of('int', d, sc)}, {self.of('int', d, sc)})",
                    f"math.abs({self.of('int', d, sc)})",
                ]
            )
        if k == 10:
            return f"({self.of('bool', d, sc)} ? {self.of('int', d, sc)} : {self.of('int', d, sc)})"
        if k == 11:
            return self.bind("int", d, sc)
        if k == 12:
            return f"{self.of('map(string,int)', d, sc)}[{self.of('string', d, sc)}]"
        if k == 13:
            return f"{self.of('list(int)', d, sc)}.filter(n, n > 1).size()"
        return self.comprehension("int", d, sc)

    def t_uint(self, d: int, sc: Scope) -> str:
        k = self.r.randint(0, 3)
        if k <= 1:
            op = self.pick(["+", "-", "*", "/", "%"])
            return f"{self.paren(self.of('uint', d, sc))} {op} {self.paren(self.of('uint', d, sc))}"
        if k == 2:
            return f"uint({self.of(self.pick(['int', 'double', 'string']), d, sc)})"
        return f"({self.of('bool', d, sc)} ? {self.of('uint', d, sc)} : {self.of('uint', d, sc)})"

    def t_double(self, d: int, sc: Scope) -> str:
        k = self.r.randint(0, 4)
        if k <= 1:
            op = self.pick(["+", "-", "*", "/"])
            return f"{self.paren(self.of('double', d, sc))} {op} {self.paren(self.of('double', d, sc))}"
        if k == 2:
            if self.chance(0.4):
                return f'double("{self.pick(["1e400", "0x1p-2", "1_0.5", "inf", "-Infinity", "NaN", " 1", "2.5"])}")'
            return f"double({self.of(self.pick(['int', 'uint', 'string']), d, sc)})"
        if k == 3:
            return f"{self.of('quantity', d, sc)}.asApproximateFloat()"
        return self.pick(
            [
                f"math.ceil({self.of('double', d, sc)})",
                f"{self.of('list(double)', d, sc)}.sum()",
                f"-{self.paren(self.of('double', d, sc))}",
            ]
        )

    def t_string(self, d: int, sc: Scope) -> str:
        k = self.r.randint(0, 13)
        if k <= 1:
            return self.attr_string()
        if k == 2:
            return f"{self.of('string', d, sc)} + {self.of('string', d, sc)}"
        s = self.paren(self.of("string", d, sc))
        if k == 3:
            return f"{s}.{self.pick(['lowerAscii', 'upperAscii', 'trim'])}()"
        if k == 4:
            extra = f", {self.pick(['-1', '0', '1', '2'])}" if self.chance(0.3) else ""
            return f"{s}.replace({self.of('string', d, sc)}, {self.of('string', d, sc)}{extra})"
        if k == 5:
            extra = f", {self.of('int', d, sc)}" if self.chance(0.5) else ""
            return f"{s}.substring({self.of('int', d, sc)}{extra})"
        if k == 6:
            return f"{s}.charAt({self.of('int', d, sc)})"
        if k == 7:
            sep = f"{self.of('string', d, sc)}" if self.chance(0.6) else ""
            return f"{self.of('list(string)', d, sc)}.join({sep})"
        if k == 8:
            return self.format_call(d, sc)
        if k == 9:
            src = self.pick(["int", "uint", "double", "bool", "bytes", "string", "ip", "cidr", "quantity", "semver"])
            return f"string({self.of(src, d, sc)})"
        if k == 10:
            return self.pick(
                [
                    f"strings.quote({self.of('string', d, sc)})",
                    f'{s}.find("{self.pick(REGEXES)}")',
                    f"{self.of('url', d, sc)}.{self.pick(URL_GETTERS)}()",
                    f"{s}.reverse()",
                ]
            )
        if k == 11:
            return f"{self.of('string', d, sc)}.split({self.of('string', d, sc)})[{self.pick(['0', '1', '5'])}]"
        if k == 12:
            return f"({self.of('bool', d, sc)} ? {self.of('string', d, sc)} : {self.of('string', d, sc)})"
        return self.bind("string", d, sc)

    def format_call(self, d: int, sc: Scope) -> str:
        template = self.pick(FORMATS)
        nargs = template.count("%") - 2 * template.count("%%")
        if self.chance(self.ill):
            nargs += self.pick([-1, 1])
        args = []
        for _ in range(max(nargs, 0)):
            t = {
                "s": self.pick(
                    ["string", "int", "bool", "double", "list(int)", "list(string)", "list(double)", "map(string,int)"]
                ),
                "d": "int",
                "f": "double",
            }.get(template.split("%")[-1][-1:], self.pick(["int", "double", "string"]))
            args.append(self.of(t, d, sc))
        return f'"{template}".format([{", ".join(args)}])'

    def t_bytes(self, d: int, sc: Scope) -> str:
        if self.chance(0.5):
            return f"bytes({self.of('string', d, sc)})"
        return f"{self.of('bytes', d, sc)} + {self.of('bytes', d, sc)}"

    def t_quantity(self, d: int, sc: Scope) -> str:
        if self.chance(0.5):
            return self.lib_literal("quantity")
        other = self.of("quantity", d, sc) if self.chance(0.6) else self.of("int", d, sc)
        return f"{self.of('quantity', d, sc)}.{self.pick(['add', 'sub'])}({other})"

    def t_semver(self, d: int, sc: Scope) -> str:
        return self.lib_literal("semver")

    def t_ip(self, d: int, sc: Scope) -> str:
        return self.lib_literal("ip")

    def t_cidr(self, d: int, sc: Scope) -> str:
        c = self.lib_literal("cidr")
        return f"{c}.masked()" if self.chance(0.3) else c

    def t_url(self, d: int, sc: Scope) -> str:
        return self.lib_literal("url")

    def t_attr(self, d: int, sc: Scope) -> str:
        return self.attr_string()

    def list_of(self, elem: str, d: int, sc: Scope) -> str:
        k = self.r.randint(0, 11)
        if k <= 2:
            items = [self.of(elem, d - 1, sc) for _ in range(self.r.randint(0, 4))]
            return "[" + ", ".join(items) + "]"
        if k == 3 and elem == "string":
            extra = f", {self.pick(['-1', '0', '1', '2'])}" if self.chance(0.3) else ""
            return f"{self.paren(self.of('string', d - 1, sc))}.split({self.of('string', d - 1, sc)}{extra})"
        if k == 3 and elem == "int":
            return f"lists.range({self.pick(['0', '3', '10', '-1', '100'])})"
        if k == 4:
            x = self.var()
            src = self.pick(["int", "string", "double"])
            inner = {**sc, x: src}
            return f"{self.of(f'list({src})', d - 1, sc)}.map({x}, {self.of(elem, d - 1, inner)})"
        if k == 5:
            x = self.var()
            return f"{self.of(f'list({elem})', d - 1, sc)}.filter({x}, {self.of('bool', d - 1, {**sc, x: elem})})"
        if k == 6:
            fn = self.pick(["sort()", "distinct()", "slice(0, 1)", "slice(1, 5)", "reverse()"])
            return f"{self.of(f'list({elem})', d - 1, sc)}.{fn}"
        if k == 7:
            return f"{self.of(f'list({elem})', d - 1, sc)} + {self.of(f'list({elem})', d - 1, sc)}"
        if k == 8 and elem == "string":
            return self.pick([f"{A}.map(k, k)", f'{self.paren(self.attr_string())}.findAll("[0-9]+")'])
        if k == 9:
            return f"[{self.of(f'list({elem})', d - 1, sc)}].flatten()"
        if k == 10:  # the three-argument map: filter, then transform
            x = self.var()
            inner = {**sc, x: elem}
            keep, value = self.of("bool", d - 1, inner), self.of(elem, d - 1, inner)
            return f"{self.of(f'list({elem})', d - 1, sc)}.map({x}, {keep}, {value})"
        if k == 11:  # two-variable transforms: index and element, key and value
            i, x = self.var(), self.var()
            if self.chance(0.5):
                inner = {**sc, i: "int", x: elem}
                return f"{self.of(f'list({elem})', d - 1, sc)}.transformList({i}, {x}, {self.of(elem, d - 1, inner)})"
            inner = {**sc, i: "string", x: "int"}
            return f"{self.of('map(string,int)', d - 1, sc)}.transformList({i}, {x}, {self.of(elem, d - 1, inner)})"
        return self.leaf(f"list({elem})", sc)

    def map_of(self, value: str, d: int, sc: Scope) -> str:
        k = self.r.randint(0, 3)
        if k == 0 and value == "int":
            return self.pick([f"{{'a': 1, 'a': {self.of('int', d - 1, sc)}}}", "{1: 2}", "{'a': 1, 'b': 'x'}"])
        if k == 1:
            x = self.var()
            return f"{self.of('list(string)', d - 1, sc)}.transformMap(i, {x}, {self.of(value, d - 1, sc)})"
        if k == 2 and self.chance(0.5):
            i, x = self.var(), self.var()
            inner = {**sc, i: "string", x: value}
            entry = f"{{{self.of('string', d - 1, inner)}: {self.of(value, d - 1, inner)}}}"
            return f"{self.of(f'map(string,{value})', d - 1, sc)}.transformMapEntry({i}, {x}, {entry})"
        entries = [f"{self.of('string', d - 1, sc)}: {self.of(value, d - 1, sc)}" for _ in range(self.r.randint(0, 3))]
        return "{" + ", ".join(entries) + "}"
