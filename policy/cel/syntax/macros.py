"""Receiver macros expanded into existing nodes, as cel-go expands them.

* ``list.sortBy(x, key)`` (``ext.Lists`` v2+): ``cel.bind(@__sortBy_input__, list,
  @__sortBy_input__.@sortByAssociatedKeys(@__sortBy_input__.map(x, key)))``; the receiver must be a list
  literal, an identifier, a selection, a call or a comprehension.
* ``opt.optMap(x, expr)`` (``cel.OptionalTypes``): ``opt.hasValue() ? optional.of(cel.bind(x, opt.value(), expr))
  : optional.none()``; ``opt.optFlatMap(x, expr)`` the same without ``optional.of`` (``expr`` is an optional).
"""

from __future__ import annotations

from gpupolicy.policy.cel.ast import Bind, Call, Comprehension, Ident, Index, ListLit, Node, Select


class ParseIssue(Exception):
    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message, self.pos = message, pos


_SORT_INPUT = "@__sortBy_input__"


def receiver_macro(name: str, target: Node, args: list[Node], pos: int) -> Node:
    """Expand ``target.name(var, expr)`` for ``sortBy``, ``optMap`` and ``optFlatMap``."""
    var, expr = args
    if not isinstance(var, Ident):
        raise ParseIssue(f"{name}() variable name must be a simple identifier", var.pos)
    if name == "sortBy":
        if not isinstance(target, (ListLit, Ident, Select, Call, Index, Comprehension, Bind)):
            raise ParseIssue(
                "sortBy can only be applied to a list, identifier, comprehension, call or select expression", pos
            )
        keys = Comprehension(pos, "map", Ident(pos, _SORT_INPUT), var.name, expr)
        return Bind(pos, _SORT_INPUT, target, Call(pos, "@sortByAssociatedKeys", (keys,), Ident(pos, _SORT_INPUT)))
    value = Bind(pos, var.name, Call(pos, "value", (), target), expr)
    present = Call(pos, "hasValue", (), target)
    none = Call(pos, "none", (), Ident(pos, "optional"))
    result = Call(pos, "of", (value,), Ident(pos, "optional")) if name == "optMap" else value
    return Call(pos, "_?_:_", (present, result, none))
