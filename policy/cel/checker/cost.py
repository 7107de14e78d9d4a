"""The static cost estimate of a checked expression: a port of cel-go's ``checker.Cost`` (``checker/cost.go``).

The API server refuses a device selector whose estimated worst-case cost exceeds
``CELSelectorExpressionMaxCost`` (1,000,000). The estimate walks cel-go's checked tree (:mod:`.costtree`):
identifiers and field selections cost 1, literals 0, list literals 10 and map literals 30 plus their items, a
call its arguments plus what its estimator says (:mod:`.costlib`: Kubernetes' library estimator, the overload
estimators of cel-go's ``ext`` libraries, then cel-go's own rules), a comprehension its range, its accumulator
and its result plus ``range size x (loop condition + loop step)``. Sizes (of strings, lists, maps) come from
literals, from what calls compute, and from the maximum sizes Kubernetes declares for the ``device`` variable
(:mod:`.costenv`), tracked along field paths (``device.attributes.@values``) into comprehension variables and
``cel.bind`` variables. All arithmetic saturates at ``2**64 - 1``: an unbounded size makes the estimate huge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gpupolicy.policy.cel import ast
from gpupolicy.policy.cel.checker import costlib
from gpupolicy.policy.cel.checker import costmath as cm
from gpupolicy.policy.cel.checker.costenv import estimate_size
from gpupolicy.policy.cel.checker.costmath import Est
from gpupolicy.policy.cel.checker.costnode import E, Entry, GoPath, Node, go_append, items
from gpupolicy.policy.cel.checker.costtree import ACCU, lower
from gpupolicy.policy.cel.core import StaticType, kind


@dataclass(slots=True)
class _Local:
    path: GoPath | None
    size: Est | None
    entry: Entry | None


class Coster:
    def __init__(self, presence_test_cost: int = 0) -> None:
        self.paths: dict[int, GoPath | None] = {}
        self.locals: dict[str, list[_Local]] = {}
        self.sizes: dict[int, Est] = {}
        self.entries: dict[int, Entry] = {}
        self.presence = cm.fixed(presence_test_cost)  # Kubernetes: PresenceTestHasCost(false)

    # --- the walk -----------------------------------------------------------------------

    def cost(self, e: E) -> Est:
        k = e.kind
        if k == "lit":
            return cm.fixed(cm.CONST_COST)
        if k == "ident":
            local = self._peek(e.name)
            self.paths[e.id] = local.path if local is not None else GoPath.of(e.name)
            return cm.fixed(cm.SELECT_AND_IDENT_COST)
        if k == "select":
            return self._select(e)
        if k == "call":
            return self._call(e)
        if k == "list":
            return self._list(e)
        if k == "map":
            return self._map(e)
        assert e.comp is not None
        return self._bind(e) if self._is_bind(e) else self._comprehension(e)

    def _select(self, e: E) -> Est:
        operand = e.args[0]
        if e.test_only:
            return cm.add(self.presence, self.cost(operand))
        total = self.cost(operand)
        if kind(operand.type) in ("map", "object"):
            total = cm.add(total, cm.fixed(cm.SELECT_AND_IDENT_COST))
        self.paths[e.id] = go_append(self.path(operand), e.name)
        return total

    def _call(self, e: E) -> Est:
        if e.name == "dyn" and e.target is None and len(e.args) == 1:  # cel-go: dyn() only disables type checks
            arg = e.args[0]
            arg_cost = self.cost(arg)
            self._copy_sizes(e, arg)
            return cm.add(cm.ONE, arg_cost)
        arg_costs = [self.cost(a) for a in e.args]
        arg_nodes = [self.node(a) for a in e.args]
        total = cm.ZERO
        target: Node | None = None
        if e.target is not None:
            total = self.cost(e.target)
            target = self.node(e.target)
        fn_cost: Est = (cm.UINT64_MAX, 0)
        result_size: Est | None = None
        for overload in e.overloads:
            call_cost, size = costlib.function_cost(self, e, overload, target, arg_nodes, arg_costs)
            fn_cost = cm.union(fn_cost, call_cost)
            if size is not None:
                result_size = size if result_size is None else cm.union(result_size, size)
            if overload in ("index_list", "index_map") and e.args:
                entry = self.entry_size(e.args[0])
                result_size = entry.val if entry is not None else None
                sub = "@items" if overload == "index_list" else "@values"
                self.paths[e.id] = go_append(self.path(e.args[0]), sub)
            if result_size is None:
                result_size = self.size(e)
        self._set_size(e, result_size)
        return cm.add(total, fn_cost)

    def _list(self, e: E) -> Est:
        total = cm.ZERO
        item: Est = (cm.UINT64_MAX, 0) if e.args else cm.ZERO
        for a in e.args:
            total = cm.add(total, self.cost(a))
            item = cm.union(item, self.size_or_unknown(a))
        self.entries[e.id] = Entry("list", cm.ONE, item)
        return cm.add(total, cm.fixed(cm.LIST_CREATE_BASE_COST))

    def _map(self, e: E) -> Est:
        total = cm.ZERO
        key: Est = (cm.UINT64_MAX, 0) if e.args else cm.ZERO
        val = key
        for i in range(0, len(e.args), 2):
            k, v = e.args[i], e.args[i + 1]
            total = cm.add(cm.add(total, self.cost(k)), self.cost(v))
            key = cm.union(key, self.size_or_unknown(k))
            val = cm.union(val, self.size_or_unknown(v))
        self.entries[e.id] = Entry("map", key, val)
        return cm.add(total, cm.fixed(cm.MAP_CREATE_BASE_COST))

    def _is_bind(self, e: E) -> bool:
        c = e.comp
        assert c is not None
        return (
            c.range.kind == "list"
            and not c.range.args
            and c.cond.kind == "lit"
            and c.cond.value is False
            and c.accu != ACCU
        )

    def _bind(self, e: E) -> Est:
        c = e.comp
        assert c is not None
        total = cm.add(self.cost(c.range), self.cost(c.init))
        self._push_local(c.accu, c.init)
        total = cm.add(total, self.cost(c.result))
        self._pop(c.accu)
        self._copy_sizes(e, c.result)
        return total

    def _comprehension(self, e: E) -> Est:
        c = e.comp
        assert c is not None
        total = cm.add(self.cost(c.range), self.cost(c.init))
        self._push_local(c.accu, c.init)
        if c.var2 is not None:
            self._push_iter(c.var, c.range, "key")
            self._push_iter(c.var2, c.range, "value")
        else:
            self._push_iter(c.var, c.range, "single")
        loop = self.cost(c.cond)
        step = self.cost(c.step)
        self._pop(c.var)
        if c.var2 is not None:
            self._pop(c.var2)
        total = cm.add(total, self.cost(c.result))
        self._pop(c.accu)
        count = self.size_or_unknown(c.range)
        total = cm.add(total, cm.mul(count, cm.add(step, loop)))
        if c.init.kind == "lit":
            self._set_size(e, self.size(c.init))
        elif c.init.kind in ("list", "map"):
            self._set_size(e, count)
            step_entry = self.entry_size(c.step)
            if step_entry is not None:
                self.entries[e.id] = step_entry
        return total

    # --- variables ------------------------------------------------------------------------

    def _peek(self, name: str) -> _Local | None:
        stack = self.locals.get(name)
        return stack[-1] if stack else None

    def _pop(self, name: str) -> None:
        self.locals[name].pop()

    def _push_local(self, name: str, init: E) -> None:
        local = _Local(self.path(init), self.size(init), self.entry_size(init))
        self.locals.setdefault(name, []).append(local)

    def _push_iter(self, name: str, rng: E, role: str) -> None:
        entry = self.entry_size(rng)
        container = entry.container if entry is not None else kind(rng.type)
        is_list = container == "list"
        if role == "key":
            size, sub = (entry.key if entry else None), ("@indices" if is_list else "@keys")
        elif role == "value":
            size, sub = (entry.val if entry else None), ("@items" if is_list else "@values")
        elif is_list:
            size, sub = (entry.val if entry else None), "@items"
        else:
            size, sub = (entry.key if entry else None), "@keys"
        local = _Local(go_append(self.path(rng), sub), size, None)
        self.locals.setdefault(name, []).append(local)

    # --- paths and sizes --------------------------------------------------------------------

    def path(self, e: E) -> GoPath | None:
        if e.kind == "ident":
            local = self._peek(e.name)
            if local is not None:
                return local.path
        return self.paths.get(e.id)

    def node(self, e: E) -> Node:
        path = self.path(e)
        if path is not None and path.n > 0 and path.backing[0] in (ACCU, "__result__"):
            path = None  # only paths from declared variables
        return Node(e, path, e.type, self.size(e))

    def _set_size(self, e: E, size: Est | None) -> None:
        if size is not None:
            self.sizes[e.id] = size

    def _copy_sizes(self, dst: E, src: E) -> None:
        self._set_size(dst, self.size(src))
        entry = self.entry_size(src)
        if entry is not None:
            self.entries[dst.id] = entry

    def size_or_unknown(self, e: E) -> Est:
        size = self.size(e)
        return size if size is not None else cm.UNKNOWN

    def size(self, e: E) -> Est | None:
        """cel-go's ``computeSize``: a computed size, a literal's, the declared one, a scalar's, a local's."""
        known = self.sizes.get(e.id)
        if known is not None:
            return known
        literal = _literal_size(e)
        if literal is not None:
            return literal
        declared = estimate_size(items(self.path(e)))
        if declared is not None:
            self.sizes[e.id] = declared
            return declared
        if is_scalar(e.type):
            return cm.ONE
        if e.kind == "ident":
            local = self._peek(e.name)
            if local is not None and local.size is not None:
                return local.size
        return None

    def entry_size(self, e: E) -> Entry | None:
        known = self.entries.get(e.id)
        if known is not None:
            return known
        if e.kind == "ident":
            local = self._peek(e.name)
            if local is not None:
                return local.entry
        return None


def _literal_size(e: E) -> Est | None:
    if e.kind == "lit":
        v = e.value
        if isinstance(v, str):
            return cm.fixed(len(v))
        if isinstance(v, bytes):
            return cm.fixed(len(v))
        return cm.ONE  # bool, int, uint, double, null
    if e.kind == "list":
        return cm.fixed(len(e.args))
    if e.kind == "map":
        return cm.fixed(len(e.args) // 2)
    return None


_SCALARS = frozenset({"bool", "double", "duration", "int", "timestamp", "uint"})


def is_scalar(t: StaticType) -> bool:
    """Types of a size known when compiling (cel-go's ``isScalar``; strings vary, ``dyn`` is unknown)."""
    if isinstance(t, str):
        return t in _SCALARS
    return t[0] == "optional_type" and len(t) > 1 and is_scalar(t[1])


def estimate(node: ast.Node, types: Mapping[int, StaticType]) -> Est:
    """The (min, max) cost estimate of a checked expression, as the API server computes it."""
    return Coster().cost(lower(node, types))
