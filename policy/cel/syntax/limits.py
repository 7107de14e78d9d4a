"""cel-go's parser limits, measured on cel-python's lark tree (``Tree``/``Token`` duck-typed, no recursion).

cel-go (v0.29, the defaults Kubernetes keeps: it sets no parser limit of its own) refuses an expression in two ways,
both with the default limit of 250:

* while parsing, a listener counts how deeply each ANTLR rule is nested and stops at ``expression recursion limit
  exceeded: 250``. The rules that nest deepest are ``expr`` (one per parenthesis, list element, map key or value,
  call argument, index and ternary ``else`` branch) and ``calc`` (one per sub-expression that is not the ``else`` of
  a ternary, plus one per right operand of a relational or arithmetic operator: ANTLR parses left operands of
  left-recursive rules in the same invocation, right operands in a new one);
* while building the syntax tree, the visitor counts nested ternaries, relational and arithmetic operations,
  selections, method calls and indexes (not ``&&``, ``||``, ``!``, ``-``, global calls or literals) and stops at
  ``max recursion depth exceeded``.

So ``!`` repeated any number of times, long ``&&`` chains and 249 chained additions compile, and 250 do not.
"""

from __future__ import annotations

from typing import Any

RECURSION_LIMIT = 250  # cel-go's parser.maxRecursionDepth default

_RIGHT_OPERAND = {"relation", "addition", "multiplication"}
_VISITOR_COUNTED = {
    "member_dot",
    "member_dot_opt",
    "member_dot_quoted",
    "member_dot_opt_quoted",
    "member_dot_arg",
    "member_index",
    "member_index_opt",
}


class LimitExceeded(Exception):
    def __init__(self, message: str, node: Any) -> None:
        super().__init__(message)
        self.message, self.node = message, node


def check_limits(tree: Any) -> None:
    """Raise :class:`LimitExceeded` at the first node that nests deeper than cel-go allows."""
    listener_error: LimitExceeded | None = None
    visitor_error: LimitExceeded | None = None
    # (node, expr depth, calc depth, visitor depth)
    stack: list[tuple[Any, int, int, int]] = [(tree, 0, 0, 0)]
    while stack and listener_error is None:
        node, exprs, calcs, visits = stack.pop()
        data = getattr(node, "data", None)
        if data is None:  # a token
            continue
        kids = node.children
        if data == "expr":
            exprs += 1
            if exprs > RECURSION_LIMIT:
                listener_error = LimitExceeded(f"expression recursion limit exceeded: {RECURSION_LIMIT}", node)
                break
            if len(kids) == 3:  # a ternary; its ``else`` is an ``expr`` of its own
                visits += 1
                stack.append((kids[2], exprs, calcs, visits))
            for kid in kids[:2]:  # the condition and the ``then`` branch are conditionalOr: a new calc
                if calcs + 1 > RECURSION_LIMIT:
                    listener_error = LimitExceeded(f"expression recursion limit exceeded: {RECURSION_LIMIT}", kid)
                    break
                stack.append((kid, exprs, calcs + 1, visits))
            continue
        if data in _RIGHT_OPERAND and len(kids) == 2:
            visits += 1
            if calcs + 1 > RECURSION_LIMIT:
                listener_error = LimitExceeded(f"expression recursion limit exceeded: {RECURSION_LIMIT}", kids[1])
                break
            stack.append((kids[0], exprs, calcs, visits))
            stack.append((kids[1], exprs, calcs + 1, visits))
            continue
        if data in _VISITOR_COUNTED:
            visits += 1
        if visits > RECURSION_LIMIT and visitor_error is None:
            visitor_error = LimitExceeded("max recursion depth exceeded", node)
        stack.extend((kid, exprs, calcs, visits) for kid in kids)
    if listener_error is not None:
        raise listener_error
    if visitor_error is not None:
        raise visitor_error
