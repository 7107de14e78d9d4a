"""Turn cel-python's lark parse tree into :mod:`gpupolicy.policy.cel.ast` nodes.

This module only walks a lark tree (duck-typed: ``.data``, ``.children``, ``.meta``; tokens
have ``.type``, ``.value`` and ``.start_pos``); it never imports the CEL engine. Macros
(``has``, ``all``, ``exists``, ``exists_one``, ``map``, ``filter``, ``cel.bind``) become their
own nodes here, as cel-go's parser expands them. Long ``&&``/``||`` chains are balanced so that
they never exhaust the Python stack; other nesting is bounded by cel-go's limits (:mod:`.limits`), checked first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from gpupolicy.policy.cel.ast import Bind, Call, Comprehension, Ident, Index, ListLit, Literal, MapLit, Node, Select
from gpupolicy.policy.cel.runtime.values import INT64_MAX, INT64_MIN, UINT64_MAX, Uint
from gpupolicy.policy.cel.syntax.macros import ParseIssue, receiver_macro

_PASS = {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member",
         "primary", "paren_expr"}  # fmt: skip
_REL = {"relation_lt": "_<_", "relation_le": "_<=_", "relation_gt": "_>_", "relation_ge": "_>=_",
        "relation_eq": "_==_", "relation_ne": "_!=_", "relation_in": "@in"}  # fmt: skip
_ARITH = {"addition_add": "_+_", "addition_sub": "_-_", "multiplication_mul": "_*_", "multiplication_div": "_/_",
          "multiplication_mod": "_%_"}  # fmt: skip
_MACROS = {"all", "exists", "exists_one", "map", "filter"}
_RECEIVER_MACROS = {"sortBy", "optMap", "optFlatMap"}
_TWO_VAR = {"all", "exists", "existsOne", "exists_one", "transformList", "transformMap", "transformMapEntry"}


def position(tree: Any) -> int:
    """Where ``tree`` starts: its own position, else its first token's (lark leaves some rules, such as
    a nested conditional, without one)."""
    while True:  # down the leftmost children, without recursion
        if hasattr(tree, "start_pos"):
            return int(tree.start_pos or 0)
        meta = getattr(tree, "meta", None)
        start = getattr(meta, "start_pos", None) if meta is not None and not meta.empty else None
        if start is not None:
            return int(start)
        children = getattr(tree, "children", None)
        if not children:
            break
        tree = children[0]
    return 0


def _is_optional_entry(x: Any) -> bool:
    """``?x`` in a list literal, ``?k`` in a map literal."""
    return _is_tree(x) and x.data == "opt_elem"


def _is_tree(x: Any) -> bool:
    return hasattr(x, "data")


def end(tree: Any) -> int | None:
    """Where ``tree`` ends (one past its last character), or None when lark kept no position."""
    while True:
        if hasattr(tree, "end_pos"):
            return int(tree.end_pos) if tree.end_pos is not None else None
        meta = getattr(tree, "meta", None)
        if meta is not None and not meta.empty and getattr(meta, "end_pos", None) is not None:
            return int(meta.end_pos)
        children = getattr(tree, "children", None)
        if not children:
            return None
        tree = children[-1]


class Converter:
    """``text``, the expression, lets nodes sit where cel-go puts them: an operator call at its operator token, an
    index at its ``[``, a selection at its ``.``, a call at its ``(``, a ternary at its ``?``."""

    def __init__(
        self, string_literal: Callable[[Any], str], bytes_literal: Callable[[Any], bytes], text: str = ""
    ) -> None:
        self.string_literal = string_literal
        self.bytes_literal = bytes_literal
        self.text = text

    def _after(self, tree: Any, fallback: int) -> int:
        """The first character after ``tree`` that is not a space or a comment: the token that follows it."""
        pos = end(tree)
        if pos is None or not self.text:
            return fallback
        text = self.text
        while pos < len(text):
            if text[pos] in " \t\n\r\f":
                pos += 1
            elif text.startswith("//", pos):
                newline = text.find("\n", pos)
                pos = len(text) if newline < 0 else newline + 1
            else:
                return pos
        return fallback

    def convert(self, tree: Any, depth: int = 0) -> Node:
        while _is_tree(tree) and tree.data in _PASS and len(tree.children) == 1:
            tree = tree.children[0]
        data, kids = tree.data, tree.children
        handler = getattr(self, f"_{data}", None)
        if handler is None:
            raise ParseIssue(f"unsupported syntax: {data}", position(tree))
        result: Node = handler(tree, kids, depth + 1)
        return result

    # --- operators ------------------------------------------------------------------------

    def _expr(self, tree: Any, kids: list[Any], d: int) -> Node:
        cond, yes, no = (self.convert(k, d) for k in kids)
        return Call(self._after(kids[0], position(tree)), "_?_:_", (cond, yes, no))

    def _chain(self, tree: Any, op: str, d: int) -> Node:
        terms = []
        while _is_tree(tree) and tree.data == ("conditionalor" if op == "_||_" else "conditionaland"):
            if len(tree.children) == 1:
                tree = tree.children[0]
                break
            terms.append(tree.children[1])
            tree = tree.children[0]
        terms.append(tree)
        nodes = [self.convert(t, d) for t in reversed(terms)]
        return _balanced(op, nodes)

    def _conditionalor(self, tree: Any, kids: list[Any], d: int) -> Node:
        return self._chain(tree, "_||_", d)

    def _conditionaland(self, tree: Any, kids: list[Any], d: int) -> Node:
        return self._chain(tree, "_&&_", d)

    def _relation(self, tree: Any, kids: list[Any], d: int) -> Node:
        op_tree, right = kids
        left = op_tree.children[0]
        pos = self._after(left, position(op_tree))
        return Call(pos, _REL[op_tree.data], (self.convert(left, d), self.convert(right, d)))

    def _binary(self, tree: Any, kids: list[Any], d: int) -> Node:
        op_tree, right = kids
        left = self.convert(op_tree.children[0], d)
        pos = self._after(op_tree.children[0], position(op_tree))
        return Call(pos, _ARITH[op_tree.data], (left, self.convert(right, d)))

    _addition = _binary
    _multiplication = _binary

    def _unary(self, tree: Any, kids: list[Any], d: int) -> Node:
        """A run of ``!`` or of ``-`` as cel-go reads it: one operator for an odd run, none for an even one
        (``!!1 == 1`` compiles), a run mixing the two is a syntax error, and a lone ``-`` before a number is
        its sign (``- 9223372036854775808`` is INT64_MIN) while a longer run negates the unsigned number."""
        ops: list[Any] = []
        while _is_tree(tree) and tree.data == "unary" and len(tree.children) == 2:
            ops.append(tree.children[0])
            tree = tree.children[1]
        for op in ops[1:]:
            if op.data != ops[0].data:
                raise ParseIssue(f"syntax error: unexpected {'!' if op.data == 'unary_not' else '-'!r}", position(op))
        negative = ops[0].data == "unary_neg"
        token = _number(tree) if negative else None
        if token is not None and str(token.value).startswith("-"):
            ops.append(token)
        operand: Node
        if token is not None:
            magnitude = str(token.value).lstrip("-")
            if len(ops) == 1:
                return Literal(position(ops[0]), self._literal_value(token, "-" + magnitude))
            operand = Literal(position(token), self._literal_value(token, magnitude))
        else:
            operand = self.convert(tree, d)
        if len(ops) % 2 == 0:
            return operand
        return Call(position(ops[0]), "-_" if negative else "!_", (operand,))

    # --- members ----------------------------------------------------------------------------

    def _member_dot(self, tree: Any, kids: list[Any], d: int) -> Node:
        operand, name = kids
        return Select(self._after(operand, position(name)), self.convert(operand, d), str(name.value))

    def _member_dot_opt(self, tree: Any, kids: list[Any], d: int) -> Node:
        operand, name = kids
        pos = self._after(operand, position(name))
        return Select(pos, self.convert(operand, d), str(name.value), optional=True)

    def _member_dot_quoted(self, tree: Any, kids: list[Any], d: int) -> Node:
        operand, name = kids  # cel-go's escaped identifier: a.`b-c` selects the field "b-c"
        return Select(self._after(operand, position(name)), self.convert(operand, d), str(name.value)[1:-1])

    def _member_dot_opt_quoted(self, tree: Any, kids: list[Any], d: int) -> Node:
        operand, name = kids
        pos = self._after(operand, position(name))
        return Select(pos, self.convert(operand, d), str(name.value)[1:-1], optional=True)

    def _member_index_opt(self, tree: Any, kids: list[Any], d: int) -> Node:
        operand, index = kids
        pos = self._after(operand, position(tree))
        return Index(pos, self.convert(operand, d), self.convert(index, d), optional=True)

    def _member_index(self, tree: Any, kids: list[Any], d: int) -> Node:
        operand, index = kids
        return Index(self._after(operand, position(tree)), self.convert(operand, d), self.convert(index, d))

    def _member_dot_arg(self, tree: Any, kids: list[Any], d: int) -> Node:
        operand, name = kids[0], str(kids[1].value)
        raw_args = kids[2].children if len(kids) > 2 else []
        pos = self._after(kids[1], position(kids[1]))  # the (
        target = self.convert(operand, d)
        two_var = (
            len(raw_args) == 3 if name in ("all", "exists", "existsOne", "exists_one") else name.startswith("transform")
        )
        if name in _TWO_VAR and two_var:
            return self._two_var(name, target, raw_args, pos, d)
        if name in _MACROS and raw_args:
            return self._macro(name, target, raw_args, pos, d)
        if name == "bind" and isinstance(target, Ident) and target.name == "cel":
            return self._bind(raw_args, pos, d)
        if name in _RECEIVER_MACROS and len(raw_args) == 2:
            return receiver_macro(name, target, [self.convert(a, d) for a in raw_args], pos)
        return Call(pos, name, tuple(self.convert(a, d) for a in raw_args), target)

    def _macro(self, name: str, target: Node, raw_args: list[Any], pos: int, d: int) -> Node:
        args = [self.convert(a, d) for a in raw_args]
        expected = (2, 3) if name == "map" else (2,)
        if len(args) not in expected or not isinstance(args[0], Ident):
            raise ParseIssue(f"invalid arguments to {name}() macro: want a variable name and an expression", pos)
        var = args[0].name
        if len(args) == 3:
            return Comprehension(pos, name, target, var, args[2], args[1])
        return Comprehension(pos, name, target, var, args[1])

    def _two_var(self, name: str, target: Node, raw_args: list[Any], pos: int, d: int) -> Node:
        args = [self.convert(a, d) for a in raw_args]
        expected = (3, 4) if name.startswith("transform") else (3,)
        if len(args) not in expected or not isinstance(args[0], Ident) or not isinstance(args[1], Ident):
            raise ParseIssue(f"invalid arguments to {name}() macro: want two variable names and an expression", pos)
        if args[0].name == args[1].name:
            raise ParseIssue(f"{name}() macro: the two variables must have different names", pos)
        predicate = args[2] if len(args) == 4 else None
        return Comprehension(pos, name, target, args[0].name, args[-1], predicate, args[1].name)

    def _bind(self, raw_args: list[Any], pos: int, d: int) -> Node:
        args = [self.convert(a, d) for a in raw_args]
        if len(args) != 3 or not isinstance(args[0], Ident):
            raise ParseIssue("cel.bind() takes a variable name, a value and an expression", pos)
        return Bind(pos, args[0].name, args[1], args[2])

    def _member_object(self, tree: Any, kids: list[Any], d: int) -> Node:
        raise ParseIssue("message construction is not supported in this environment", position(tree))

    def _ident(self, tree: Any, kids: list[Any], d: int) -> Node:
        return Ident(position(kids[0]), str(kids[0].value))

    _dot_ident = _ident

    def _ident_arg(self, tree: Any, kids: list[Any], d: int) -> Node:
        name, pos = str(kids[0].value), self._after(kids[0], position(kids[0]))  # the (
        raw_args = kids[1].children if len(kids) > 1 else []
        if name == "has":
            args = [self.convert(a, d) for a in raw_args]
            if len(args) != 1 or not isinstance(args[0], Select) or args[0].optional:
                raise ParseIssue("invalid argument to has() macro", pos)
            sel = args[0]
            return Select(pos, sel.operand, sel.field, test_only=True)
        return Call(pos, name, tuple(self.convert(a, d) for a in raw_args))

    _dot_ident_arg = _ident_arg

    def _list_lit(self, tree: Any, kids: list[Any], d: int) -> Node:
        items = kids[0].children if kids else []
        optional = frozenset(i for i, item in enumerate(items) if _is_optional_entry(item))
        nodes = tuple(self.convert(item.children[0] if i in optional else item, d) for i, item in enumerate(items))
        return ListLit(position(tree), nodes, optional)

    def _map_lit(self, tree: Any, kids: list[Any], d: int) -> Node:
        flat = kids[0].children if kids else []
        keys = flat[0::2]
        optional = frozenset(i for i, key in enumerate(keys) if _is_optional_entry(key))
        entries = tuple(
            (self.convert(key.children[0] if i in optional else key, d), self.convert(flat[2 * i + 1], d))
            for i, key in enumerate(keys)
        )
        return MapLit(position(tree), entries, optional)

    # --- literals -----------------------------------------------------------------------

    def _literal(self, tree: Any, kids: list[Any], d: int) -> Node:
        token = kids[0]
        return Literal(position(token), self._literal_value(token))

    def _literal_value(self, token: Any, text: str | None = None) -> object:
        kind, text = token.type, str(token.value) if text is None else text
        if kind == "INT_LIT":
            value = _hex(text) if "x" in text else int(text, 10)
            if not INT64_MIN <= value <= INT64_MAX:
                raise ParseIssue(f"integer literal {text} is out of the int64 range", position(token))
            return value
        if kind == "UINT_LIT":
            body = text[:-1]
            value = _hex(body) if "x" in body else int(body, 10)
            if not 0 <= value <= UINT64_MAX:
                raise ParseIssue(f"unsigned integer literal {text} is out of range", position(token))
            return Uint(value)
        if kind == "FLOAT_LIT":
            mantissa = text.lower().partition("e")[0]
            if mantissa.endswith("."):  # cel-go's grammar wants a digit after the point: "5." is a syntax error
                raise ParseIssue("Syntax error: no viable alternative at input '.'", position(token))
            number = float(text)
            if math.isinf(number):
                raise ParseIssue("invalid double literal", position(token))
            return number
        if kind in ("STRING_LIT", "MLSTRING_LIT"):
            return self.string_literal(token)
        if kind == "BYTES_LIT":
            return self.bytes_literal(token)
        if kind == "BOOL_LIT":
            return text == "true"
        if kind == "NULL_LIT":
            return None
        raise ParseIssue(f"unsupported literal {text}", position(token))


def _number(tree: Any) -> Any:
    """The int or double literal token ``tree`` is, through single-child rules; else None."""
    while _is_tree(tree) and tree.data in ("unary", "member", "primary", "literal") and len(tree.children) == 1:
        tree = tree.children[0]  # not through parentheses: -(1) is a negation in cel-go, not a literal
    return tree if getattr(tree, "type", None) in ("INT_LIT", "FLOAT_LIT") else None


def _hex(text: str) -> int:
    negative = text.startswith("-")
    value = int(text.lstrip("-")[2:], 16)
    return -value if negative else value


def _balanced(op: str, nodes: list[Node]) -> Node:
    if len(nodes) == 1:
        return nodes[0]
    mid = len(nodes) // 2
    left, right = _balanced(op, nodes[:mid]), _balanced(op, nodes[mid:])
    return Call(right.pos, op, (left, right))
