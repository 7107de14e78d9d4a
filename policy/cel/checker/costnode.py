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

    def __init__(self, expr: E | None, path: GoPath | None, t: StaticType, computed: Est | None) -> None:
        self.expr, self.path, self.type, self.computed = expr, path, t, computed


class Sizes(Protocol):
    """What the call estimators use of the walk (:class:`gpupolicy.policy.cel.checker.cost.Coster`)."""

    entries: dict[int, Entry]

    def entry_size(self, e: E) -> Entry | None: ...


class GoPath:
    """A field path as cel-go keeps it: a Go ``[]string`` (a window on a backing array with spare capacity).

    cel-go extends a path with ``append`` and hands the same slice to every user, so two extensions of one path
    can write the same backing slot: a comprehension's key variable then reads ``...@values`` instead of
    ``...@keys``, and a later ``d.x`` can change the path of a variable iterating over ``d``. The estimate
    depends on it, so paths follow Go's rules: the same slots, the same capacities (``growslice`` doubling,
    rounded up to the allocator's size classes for 16-byte strings).
    """

    __slots__ = ("backing", "cap", "n")

    def __init__(self, backing: list[str], n: int, cap: int) -> None:
        self.backing, self.n, self.cap = backing, n, cap

    @staticmethod
    def of(name: str) -> GoPath:
        return GoPath([name], 1, 1)

    def items(self) -> tuple[str, ...]:
        return tuple(self.backing[: self.n])


_SIZE_CLASSES = (16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384)


def _grown_cap(needed: int, old: int) -> int:
    double = old + old
    cap = needed if needed > double else double  # paths stay far below Go's 256-element threshold
    size = cap * 16
    for klass in _SIZE_CLASSES:
        if klass >= size:
            return klass // 16
    return cap


def go_append(path: GoPath | None, name: str) -> GoPath:
    """``append(path, name)`` with Go's aliasing: in place when the backing array has room."""
    if path is None:
        return GoPath([name], 1, _grown_cap(1, 0))
    if path.n < path.cap:
        path.backing[path.n] = name
        return GoPath(path.backing, path.n + 1, path.cap)
    cap = _grown_cap(path.n + 1, path.cap)
    backing = path.backing[: path.n] + [name] + [""] * (cap - path.n - 1)
    return GoPath(backing, path.n + 1, cap)


def items(path: GoPath | None) -> tuple[str, ...] | None:
    return path.items() if path is not None else None
