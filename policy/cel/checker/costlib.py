"""What one call costs, for the static estimate (:mod:`.cost`), in cel-go's order:

1. the overload estimators of cel-go's ``ext`` libraries that Kubernetes enables (lists version 3: ``slice``,
   ``flatten``, ``lists.range``, ``reverse``, ``distinct``, ``sort``; sets),
2. Kubernetes' library estimator (``k8s.io/apiserver/pkg/cel/library/cost.go``), keyed by function name,
3. cel-go's own rules (``checker/cost.go``), keyed by overload id: string traversals cost 0.1 per character,
   regexes 0.25 per pattern character times the string, ``in`` over a list its size, ``==`` of strings or lists
   0.1 per element of the smaller side,
4. otherwise 1.

Each returns ``(cost of the call, size of its result or None)``; the cost includes the arguments' costs but not
the receiver's. :func:`overload_ids` names the overloads cel-go's checker would find for a call, as far as the
cost depends on them (functions whose cost does not depend on the overload get the function's name).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gpupolicy.policy.cel.checker import costk8s
from gpupolicy.policy.cel.checker import costmath as cm
from gpupolicy.policy.cel.checker.costk8s import REGEX, TRAVERSAL, Result, size_of
from gpupolicy.policy.cel.checker.costmath import Est
from gpupolicy.policy.cel.core import StaticType, kind

if TYPE_CHECKING:
    from gpupolicy.policy.cel.checker.costnode import E, Node, Sizes


# --- overload ids -------------------------------------------------------------------------

_WILD = ("dyn", "any")
_SORTABLE = ("int", "uint", "double", "bool", "duration", "timestamp", "string", "bytes")
# (function, member?) -> [(overload id, parameter kinds, receiver first)]; "*" matches any kind
_OVERLOADS: dict[tuple[str, bool], list[tuple[str, tuple[str, ...]]]] = {
    ("_+_", False): [
        ("add_string", ("string", "string")),
        ("add_bytes", ("bytes", "bytes")),
        ("add_list", ("list", "list")),
        ("add_other", ("*", "*")),
    ],
    ("@in", False): [("in_list", ("*", "list")), ("in_map", ("*", "map"))],
    ("matches", False): [("matches", ("string", "string"))],
    ("matches", True): [("matches_string", ("string", "string"))],
    ("contains", True): [("contains_string", ("string", "string"))],
    ("startsWith", True): [("starts_with_string", ("string", "string"))],
    ("endsWith", True): [("ends_with_string", ("string", "string"))],
    ("bytes", False): [("string_to_bytes", ("string",)), ("bytes_other", ("*",))],
    ("string", False): [("bytes_to_string", ("bytes",)), ("string_other", ("*",))],
    ("strings.quote", False): [("strings_quote", ("string",))],
    ("format", True): [("string_format", ("string", "list"))],
    ("ip", True): [("cidr_ip", ("cidr",))],
    ("ip", False): [("string_to_ip", ("string",))],
    ("containsIP", True): [("cidr_contains_ip_ip", ("cidr", "ip")), ("cidr_contains_ip_string", ("cidr", "string"))],
    ("containsCIDR", True): [
        ("cidr_contains_cidr", ("cidr", "cidr")),
        ("cidr_contains_cidr_string", ("cidr", "string")),
    ],
    ("slice", True): [("list_slice", ("list", "int", "int"))],
    ("flatten", True): [("list_flatten", ("list",)), ("list_flatten_int", ("list", "int"))],
    ("lists.range", False): [("lists_range", ("int",))],
    ("reverse", True): [("list_reverse", ("list",)), ("string_reverse", ("string",))],
    ("distinct", True): [("list_distinct", ("list",))],
    ("sets.contains", False): [("list_sets_contains_list", ("list", "list"))],
    ("sets.intersects", False): [("list_sets_intersects_list", ("list", "list"))],
    ("sets.equivalent", False): [("list_sets_equivalent_list", ("list", "list"))],
}
for _op, _suffix in (("_<_", "less"), ("_<=_", "less_equals"), ("_>_", "greater"), ("_>=_", "greater_equals")):
    _OVERLOADS[(_op, False)] = [
        (f"{_suffix}_string", ("string", "string")),
        (f"{_suffix}_bytes", ("bytes", "bytes")),
        (f"{_suffix}_other", ("*", "*")),
    ]
_FIXED_IDS = {
    "_==_": "equals",
    "_!=_": "not_equals",
    "_&&_": "logical_and",
    "_||_": "logical_or",
    "_?_:_": "conditional",
    "!_": "logical_not",
    "@not_strictly_false": "not_strictly_false",
}
_STRING_COMPARISONS = frozenset(
    f"{s}_{t}" for s in ("less", "less_equals", "greater", "greater_equals") for t in ("string", "bytes")
)


def _param_matches(param: str, t: StaticType) -> bool:
    k = kind(t)
    if param == "*" or k in _WILD:
        return True
    return param == k


def overload_ids(name: str, member: bool, types: Sequence[StaticType]) -> tuple[str, ...]:
    """The overloads cel-go's checker would record for a call whose arguments (receiver first) have ``types``."""
    if name == "sort" and member and types:
        elem = _elem_kind(types[0])
        sortable = _SORTABLE if elem in _WILD else ((elem,) if elem in _SORTABLE else ())
        return tuple(f"list_{t}_sort" for t in sortable) or (name,)
    if name == "@sortByAssociatedKeys" and member and len(types) == 2:  # sortBy's expansion: sorted by its keys
        elem = _elem_kind(types[1])
        sortable = _SORTABLE if elem in _WILD else ((elem,) if elem in _SORTABLE else ())
        return tuple(f"list_{t}_sortByAssociatedKeys" for t in sortable) or (name,)
    fixed_id = _FIXED_IDS.get(name)
    if fixed_id is not None:
        return (fixed_id,)
    table = _OVERLOADS.get((name, member))
    if table is None:
        return (name,)
    found = tuple(oid for oid, params in table if len(params) == len(types) and all(map(_param_matches, params, types)))
    return found or (name,)


def _elem_kind(t: StaticType) -> str:
    return kind(t[1]) if isinstance(t, tuple) and t[0] == "list" else "dyn"


# --- the cost of one overload ---------------------------------------------------------------


def function_cost(c: Sizes, e: E, overload: str, target: Node | None, args: list[Node], arg_costs: list[Est]) -> Result:
    """cel-go's ``functionCost`` for one overload of the call ``e``."""
    arg_sum = cm.total(*arg_costs)
    ext = (
        costk8s.EXT_ESTIMATORS.get(overload)
        or (costk8s.sort_estimator(overload) if overload.endswith("_sort") else None)
        or (costk8s.sort_by_estimator(overload) if overload.endswith("_sortByAssociatedKeys") else None)
    )
    if ext is not None:
        found = ext(c, target, args)
        if found is not None:
            return cm.add(found[0], arg_sum), found[1]
    found = costk8s.kubernetes_call_cost(c, e.name, overload, target, args)
    if found is not None:
        return cm.add(found[0], arg_sum), found[1]
    return _cel_default(c, e, overload, target, args, arg_costs, arg_sum)


def _cel_default(
    c: Sizes, e: E, overload: str, target: Node | None, args: list[Node], arg_costs: list[Est], arg_sum: Est
) -> Result:
    size = size_of
    if overload == "string_format" and target is not None:
        return cm.add(cm.factor(size(c, target), TRAVERSAL), arg_sum), None
    if overload == "string_to_bytes" and len(args) == 1:
        sz = size(c, args[0])
        return cm.add(cm.factor(sz, TRAVERSAL), arg_sum), (sz[0], cm.mul_u64(sz[1], 4))
    if overload == "bytes_to_string" and len(args) == 1:
        sz = size(c, args[0])
        return cm.add(cm.factor(sz, TRAVERSAL), arg_sum), (sz[0] // 4, sz[1])
    if overload == "strings_quote" and len(args) == 1:
        sz = size(c, args[0])
        return cm.add(cm.factor(sz, TRAVERSAL), arg_sum), (sz[0] + 2, cm.add_u64(cm.mul_u64(sz[1], 2), 2))
    if overload in ("starts_with_string", "ends_with_string") and len(args) == 1:
        return cm.add(cm.factor(size(c, args[0]), TRAVERSAL), arg_sum), None
    if overload == "in_list" and len(args) == 2:
        return cm.add(cm.factor(size(c, args[1]), 1), arg_sum), None
    if overload in ("matches", "matches_string"):
        pair = (target, args[0]) if overload == "matches_string" and target is not None and len(args) == 1 else None
        if overload == "matches" and target is None and len(args) == 2:
            pair = (args[0], args[1])
        if pair is not None:
            text = cm.factor(cm.add(size(c, pair[0]), cm.ONE), TRAVERSAL)
            regex = cm.factor(size(c, pair[1]), REGEX)
            return cm.add(cm.mul(text, regex), arg_sum), None
    if overload == "contains_string" and target is not None and len(args) == 1:
        whole = cm.factor(size(c, target), TRAVERSAL)
        part = cm.factor(size(c, args[0]), TRAVERSAL)
        return cm.add(cm.mul(whole, part), arg_sum), None
    if overload in ("logical_or", "logical_and"):
        lhs, rhs = arg_costs
        return (lhs[0], cm.add(lhs, rhs)[1]), None
    if overload == "conditional":
        result = cm.union(size(c, args[1]), size(c, args[2]))
        yes, no = (c.entry_size(a.expr) for a in args[1:] if a.expr is not None)
        merged = yes.union(no) if yes is not None else None
        if merged is not None:
            c.entries[e.id] = merged
        return cm.add(arg_costs[0], cm.union(arg_costs[1], arg_costs[2])), result
    if overload in ("add_string", "add_bytes", "add_list") and len(args) == 2:
        result = cm.add(size(c, args[0]), size(c, args[1]))
        left, right = (c.entry_size(a.expr) for a in args if a.expr is not None)
        merged = left.union(right) if left is not None else None
        if merged is not None:
            c.entries[e.id] = merged
        if overload == "add_list":
            return cm.add(cm.ONE, arg_sum), result
        return cm.add(cm.factor(result, TRAVERSAL), arg_sum), result
    if overload in _STRING_COMPARISONS or overload in ("equals", "not_equals"):
        smallest = min(size(c, args[0])[1], size(c, args[1])[1])
        return cm.add(cm.factor((1 if smallest > 0 else 0, smallest), TRAVERSAL), arg_sum), None
    return cm.add(cm.ONE, arg_sum), None
