"""A small, engine-neutral syntax tree for CEL expressions (cel-go's ``common/ast``).

``gpupolicy.policy.cel.syntax`` parses text with cel-python's grammar and converts lark trees into
these nodes; the checker (``gpupolicy.policy.cel.checker``) and the projection analysis
(``gpupolicy.policy.cel.projection``) work on them only. ``pos`` is the 0-based character offset of
the node in the expression.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Node:
    pos: int


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: object


@dataclass(frozen=True, slots=True)
class Ident(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Select(Node):
    """``operand.field``; ``test_only`` for ``has(operand.field)``; ``optional`` for ``operand.?field``."""

    operand: Node
    field: str
    test_only: bool = False
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Index(Node):
    """``operand[index]``; ``optional`` for ``operand[?index]``."""

    operand: Node
    index: Node
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A function or operator. ``target`` is the receiver of ``x.f(...)`` calls.

    Operators use cel-go's names: ``_+_``, ``_==_``, ``_&&_``, ``!_``, ``-_``, ``_?_:_``, ``@in``.
    Namespaced functions (``sets.contains``) arrive with the dotted name and no target.
    """

    name: str
    args: tuple[Node, ...]
    target: Node | None = None


@dataclass(frozen=True, slots=True)
class ListLit(Node):
    """``[a, b]``; ``optional`` holds the indices of optional elements (``[?opt]``: present only with a value)."""

    items: tuple[Node, ...]
    optional: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class MapLit(Node):
    """``{k: v}``; ``optional`` holds the indices of optional entries (``{?k: opt}``: present only with a value)."""

    entries: tuple[tuple[Node, Node], ...]
    optional: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Comprehension(Node):
    """A macro: ``all``, ``exists``, ``exists_one``, ``map`` (with optional ``predicate``), ``filter``;
    with ``var2`` the two-variable forms ``all``, ``exists``, ``existsOne``, ``transformList``,
    ``transformMap`` and ``transformMapEntry`` (``var`` is the index or key, ``var2`` the value)."""

    macro: str
    range: Node
    var: str
    body: Node
    predicate: Node | None = None
    var2: str | None = None


@dataclass(frozen=True, slots=True)
class Bind(Node):
    """``cel.bind(var, init, body)``."""

    var: str
    init: Node
    body: Node


def children(node: Node) -> tuple[Node, ...]:
    """Direct sub-expressions, for generic walks."""
    if isinstance(node, Select):
        return (node.operand,)
    if isinstance(node, Index):
        return (node.operand, node.index)
    if isinstance(node, Call):
        return ((node.target,) if node.target is not None else ()) + node.args
    if isinstance(node, ListLit):
        return node.items
    if isinstance(node, MapLit):
        return tuple(part for entry in node.entries for part in entry)
    if isinstance(node, Comprehension):
        rest = (node.body,) if node.predicate is None else (node.predicate, node.body)
        return (node.range, *rest)
    if isinstance(node, Bind):
        return (node.init, node.body)
    return ()
