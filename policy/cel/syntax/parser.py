"""Parse CEL text with cel-python's grammar and lark's LALR parser; the syntax tree comes from :mod:`.converter`.

This is the only module that imports cel-python (``celpy``) and lark: we use cel-python's grammar
(extended with CEL's optional selection syntax) and its string-literal decoding. Checking, cost
estimation and evaluation are our own: cel-python 0.5.0 has no type checker, no cost estimator,
no ``cel.bind``, no Kubernetes quantity/semver libraries, and treats run-time errors in ways that
differ from cel-go. One parse runs at a time through the shared parser (a lock).
"""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path
from typing import Any

import celpy
from celpy.evaluation import celbytes, celstr
from lark import Lark, Token

from gpupolicy.policy.cel.ast import Node
from gpupolicy.policy.cel.core import CompileIssue
from gpupolicy.policy.cel.syntax.converter import Converter, position
from gpupolicy.policy.cel.syntax.limits import LimitExceeded, check_limits
from gpupolicy.policy.cel.syntax.macros import ParseIssue

_parser_lock = threading.Lock()
_OPTIONAL_SYNTAX = """
member         : member_dot | member_dot_arg | member_index | member_object | primary
               | member_dot_opt | member_index_opt | member_dot_quoted | member_dot_opt_quoted
member_dot_quoted : member "." QUOTED_IDENT
member_dot_opt_quoted : member "." "?" QUOTED_IDENT
QUOTED_IDENT   : /`[_a-zA-Z0-9. \\/-]+`/
member_dot_opt : member "." "?" IDENT
member_index_opt : member "[" "?" expr "]"
list_lit       : "[" [listelems] "]" | "[" "," "]"
map_lit        : "{" [mapentries] "}" | "{" "," "}"
listelems      : _listelem ("," _listelem)* [","]
_listelem      : expr | opt_elem
mapentries     : _listelem ":" expr ("," _listelem ":" expr)* [","]
opt_elem       : "?" expr
"""


@functools.cache
def _lark() -> Lark:
    """cel-python's grammar plus CEL's optional syntax: selection (``a.?b``, ``a[?k]``) and optional entries in
    list and map literals (``[?x]``, ``{?k: v}``), a trailing comma in them (``[1, 2,]``, ``[,]``), and field names
    quoted with backticks (``a.`b-c```), as cel-go's grammar allows."""
    grammar = (Path(celpy.__file__).parent / "cel.lark").read_text()
    original = "member         : member_dot | member_dot_arg | member_index | member_object | primary\n"
    literals = ('list_lit       : "[" [exprlist] "]"\n', 'map_lit        : "{" [mapinits] "}"\n')
    if original not in grammar or not all(rule in grammar for rule in literals):
        return Lark(grammar, **_LARK_OPTIONS)  # a different cel-python: use its grammar unchanged
    for rule in literals:  # replaced by the optional-aware rules
        grammar = grammar.replace(rule, "")
    return Lark(grammar.replace(original, _OPTIONAL_SYNTAX.lstrip("\n")), **_LARK_OPTIONS)


def _ambiguous_literals(token: Token) -> Token:
    """cel-python's IDENT callback (``true`` and ``false`` are BOOL_LIT), keeping the token's position."""
    if token.value in ("true", "false"):
        return Token.new_borrow_pos("BOOL_LIT", token.value, token)
    return token


_LARK_OPTIONS: dict[str, Any] = {
    "parser": "lalr",
    "start": "expr",
    "g_regex_flags": re.M,
    "lexer_callbacks": {"IDENT": _ambiguous_literals},
    "propagate_positions": True,
    "maybe_placeholders": False,
    "priority": "invert",
}


def _keep_newlines(token: Token) -> Token:
    """celpy decodes a cooked literal with a pattern whose ``.`` skips line breaks, so a triple-quoted literal
    lost its newlines (cel-go keeps them): spell each as a ``\\n`` escape first. Raw literals are copied verbatim."""
    text = token.value
    prefix = text[: len(text) - len(text.lstrip("bBrR"))]
    if "\n" not in text or "r" in prefix.lower():
        return token
    return Token.new_borrow_pos(token.type, text.replace("\n", "\\n"), token)


def parse(expression: str) -> Node:
    """The syntax tree of an expression; a syntax error is a :class:`CompileIssue` (``cel_compile_error``)."""
    with _parser_lock:  # one parse at a time through the shared parser
        try:
            tree = _lark().parse(expression)
        except Exception as err:  # lark raises several exception families
            line = getattr(err, "line", None)
            column = getattr(err, "column", None)
            pos = _offset(expression, line, column)
            if getattr(getattr(err, "token", None), "type", "") == "$END":
                pos = len(expression)  # cel-go reports a missing end at <EOF>, just past the last character
            raise CompileIssue("cel_compile_error", _syntax_message(err), pos) from None
    try:
        check_limits(tree)
    except LimitExceeded as err:
        raise CompileIssue("cel_compile_error", err.message, position(err.node)) from None
    try:
        return Converter(
            lambda t: str(celstr(_keep_newlines(t))), lambda t: bytes(celbytes(_keep_newlines(t))), expression
        ).convert(tree)
    except ParseIssue as issue:
        raise CompileIssue("cel_compile_error", issue.message, issue.pos) from None
    except (ValueError, OverflowError) as err:  # malformed escapes in literals
        raise CompileIssue("cel_compile_error", f"invalid literal: {err}", 0) from None


def _syntax_message(err: BaseException) -> str:
    cause = err
    token = getattr(cause, "token", None)
    if token is not None and getattr(token, "type", "") == "$END":
        return "syntax error: unexpected end of expression"
    if token is not None:
        return f"syntax error: unexpected {str(token)!r}"
    char = getattr(cause, "char", None)
    if char is not None:
        return f"syntax error: unexpected character {char!r}"
    return "syntax error: unexpected end of expression"


def _offset(expression: str, line: object, column: object) -> int:
    if not isinstance(line, int) or not isinstance(column, int) or line < 1:
        return 0
    lines = expression.split("\n")
    return sum(len(part) + 1 for part in lines[: line - 1]) + max(column - 1, 0)
