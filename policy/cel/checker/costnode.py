"""The nodes the cost estimate works on (:mod:`.cost`): cel-go's checked tree (:class:`E`, built by
:mod:`.costtree`), the view of a node the call estimators get (:class:`Node`, cel-go's ``AstNode``), the sizes
of a container's entries (:class:`Entry`), and what the estimators use of the walk (:class:`Sizes`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Protocol

from gpupolicy.policy.cel.checker import costmath as cm
from gpupolicy.policy.cel.checker.costmath import Est
from gpupolicy.policy.cel.core import DYN, StaticType

_ids = itertools.count(1)


@dataclass(eq=False, slots=True)
class E:
    """One node: ``lit`` (value), ``ident`` (name), ``select`` (args[0] . name), ``call`` (name, target, args,
    overloads), ``list`` (args), ``map`` (args: key, value, key, value ...) or ``comp`` (see :class:`Comp`)."""

    kind: str
    type: StaticType = DYN
    name: str = ""
    value: object = None
    args: list[E] = field(default_factory=list)
    target: E | None = None
    overloads: tuple[str, ...] = ()
    test_only: bool = False
    comp: Comp | None = None
    id: int = field(default_factory=lambda: next(_ids))


@dataclass(eq=False, slots=True)
class Comp:
    range: E
    var: str
    var2: str | None
    accu: str
    init: E
    cond: E
    step: E
    result: E


@dataclass(frozen=True, slots=True)
class Entry:
    """The sizes of a container's entries: the key (or index) and the value."""

    container: str  # "list" or "map"
    key: Est
    val: Est

    def union(self, other: Entry | None) -> Entry | None:
        if other is None:
            return None
        return Entry(self.container, cm.union(self.key, other.key), cm.union(self.val, other.val))


class Node:
    """cel-go's ``AstNode`` as the estimators see it: path, type, expression and computed size."""

    __slots__ = ("computed", "expr", "path", "type")

    def __init__(self, expr: E | None, path: tuple[str, ...] | None, t: StaticType, computed: Est | None) -> None:
        self.expr, self.path, self.type, self.computed = expr, path, t, computed


class Sizes(Protocol):
    """What the call estimators use of the walk (:class:`gpupolicy.policy.cel.checker.cost.Coster`)."""

    entries: dict[int, Entry]

    def entry_size(self, e: E) -> Entry | None: ...
