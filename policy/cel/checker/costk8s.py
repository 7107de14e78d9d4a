"""Call estimators from outside cel-go's checker: Kubernetes' library ``CostEstimator.EstimateCallCost``
(``k8s.io/apiserver/pkg/cel/library/cost.go``, keyed by function name) and the overload estimators of the
cel-go ``ext`` libraries Kubernetes enables (lists version 3 and sets, keyed by overload id). Each returns
``(cost, result size or None)`` without the arguments' costs, or ``None`` to fall through to cel-go's rules.
Strings ``ext`` version 2 (Kubernetes' version) registers no estimators: its functions cost what the
Kubernetes estimator or cel-go's rules say.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from gpupolicy.policy.cel.checker import costmath as cm
from gpupolicy.policy.cel.checker.costenv import estimate_size
from gpupolicy.policy.cel.checker.costmath import UINT64_MAX, Est
from gpupolicy.policy.cel.checker.costnode import items
from gpupolicy.policy.cel.core import StaticType, kind

if TYPE_CHECKING:
    from gpupolicy.policy.cel.checker.costnode import Node, Sizes

Result = tuple[Est, Est | None]
TRAVERSAL = cm.STRING_TRAVERSAL_COST_FACTOR
REGEX = cm.REGEX_STRING_LENGTH_COST_FACTOR
MAX_FORMAT_SIZE = 64  # k8s.io/apiserver/pkg/cel/limits.go
MAX_NAME_FORMAT_REGEX_SIZE = 128

Estimator = Callable[["Sizes", "Node | None", "list[Node]"], "Result | None"]

# --- cel-go ext: lists (version 3) and sets -------------------------------------------------------


def _allocating_list(factor: float, size: Est) -> Result:
    cost = cm.add(cm.add(cm.factor(size, factor), cm.ONE), cm.fixed(cm.LIST_CREATE_BASE_COST))
    return cost, size


def _slice(c: Sizes, target: Node | None, args: list[Node]) -> Result | None:
    if target is None or len(args) != 2:
        return None
    sz = size_of(c, target)
    start, end = literal_uint(args[0], 0), literal_uint(args[1], sz[1])
    return _allocating_list(1, cm.fixed((end - start) % (1 << 64)))


def _range(c: Sizes, target: Node | None, args: list[Node]) -> Result | None:
    if target is not None or len(args) != 1:
        return None
    return _allocating_list(1, cm.fixed(literal_uint(args[0], UINT64_MAX)))


def _reverse(c: Sizes, target: Node | None, args: list[Node]) -> Result | None:
    if target is None or args:
        return None
    return _allocating_list(1, size_of(c, target))


def _flatten(c: Sizes, target: Node | None, args: list[Node]) -> Result | None:
    if target is None or len(args) > 1:
        return None
    depth = literal_uint(args[0], UINT64_MAX) if args else 1
    return _allocating_list(float(depth), size_of(c, target))


def _distinct(c: Sizes, target: Node | None, args: list[Node]) -> Result | None:
    if target is None or args:
        return None
    sz = size_of(c, target)
    return _allocating_list(2.0, cm.mul(sz, sz))


def sort_estimator(overload: str) -> Estimator | None:
    """``list_<type>_sort``: 2 per pair of elements (2.1 for strings and bytes), and a new list."""
    elem = overload[len("list_") : -len("_sort")]

    def estimate(c: Sizes, target: Node | None, args: list[Node]) -> Result | None:
        if target is None or args:
            return None
        sz = size_of(c, target)
        factor = 2.0 + (TRAVERSAL if elem in ("string", "bytes") else 0.0)
        return _allocating_list(factor, cm.mul(sz, sz))

    return estimate


def sort_by_estimator(overload: str) -> Estimator | None:
    """``list_<type>_sortByAssociatedKeys`` (``sortBy``): as ``sort``, over the list of keys (cel-go's
    ``estimateListSortBy``)."""
    elem = overload[len("list_") : -len("_sortByAssociatedKeys")]

    def estimate(c: Sizes, target: Node | None, args: list[Node]) -> Result | None:
        if target is None or len(args) != 1:
            return None
        sz = size_of(c, args[0])
        factor = 2.0 + (TRAVERSAL if elem in ("string", "bytes") else 0.0)
        return _allocating_list(factor, cm.mul(sz, sz))

    return estimate


def _sets(factor: float) -> Estimator:
    def estimate(c: Sizes, target: Node | None, args: list[Node]) -> Result | None:
        if len(args) != 2:
            return None
        product = cm.mul(size_of(c, args[0]), size_of(c, args[1]))
        return cm.add(cm.factor(product, factor), cm.ONE), None

    return estimate


EXT_ESTIMATORS: dict[str, Estimator] = {
    "list_slice": _slice,
    "list_flatten": _flatten,
    "list_flatten_int": _flatten,
    "lists_range": _range,
    "list_reverse": _reverse,
    "list_distinct": _distinct,
    "list_sets_contains_list": _sets(1),
    "list_sets_intersects_list": _sets(1),
    "list_sets_equivalent_list": _sets(2),
}

# --- Kubernetes' library estimator ----------------------------------------------------------------------

_ONE_UNIT = frozenset(
    {
        "serviceAccount", "path", "group", "resource", "subresource", "namespace", "name", "allowed", "reason",
        "error", "errored", "masked", "prefixLength", "family", "isUnspecified", "isLoopback",
        "isLinkLocalMulticast", "isLinkLocalUnicast", "isGlobalUnicast", "format.named", "sign", "asInteger",
        "isInteger", "asApproximateFloat", "isGreaterThan", "isLessThan", "compareTo", "add", "sub", "major",
        "minor", "patch", "getScheme", "getHostname", "getHost", "getPort", "getEscapedPath", "getQuery",
    }
)  # fmt: skip
_LIST_TRAVERSALS = frozenset({"isSorted", "sum", "max", "min", "indexOf", "lastIndexOf", "includes"})
_ONE_EQUAL = frozenset({"quantity", "semver", "ip", "cidr"})  # O(1) equality of Kubernetes types
_IP_SIZE: Est = (4, 16)


def kubernetes_call_cost(c: Sizes, fn: str, overload: str, target: Node | None, args: list[Node]) -> Result | None:
    def size(n: Node) -> Est:
        return size_of(c, n)

    if fn == "check":
        return cm.fixed(350000), None
    if fn in _ONE_UNIT:
        return cm.ONE, None
    if fn in ("fieldSelector", "labelSelector") and len(args) == 1:
        length = size(args[0])
        requirements = cm.factor(cm.factor(length, 0.5), float(cm.LIST_CREATE_BASE_COST + cm.STRUCT_CREATE_BASE_COST))
        return cm.total(cm.fixed(cm.LIST_CREATE_BASE_COST), cm.factor(length, TRAVERSAL), requirements), None
    if fn in _LIST_TRAVERSALS and target is not None:
        elem = _list_element(target)
        if elem is not None:
            elem_type, elem_path = elem
            per: Est = cm.ONE
            if kind(elem_type) in ("string", "bytes"):
                elem_size = estimate_size(elem_path) or cm.UNKNOWN
                per = cm.add(per, cm.factor(elem_size, TRAVERSAL))
            return cm.mul(size(target), per), None
        if fn == "includes":
            return cm.mul(size(target), cm.ONE), None
        return cm.factor(size(target), TRAVERSAL), None
    if fn in ("url", "jsonpatch.escapeKey") and len(args) == 1:
        sz = size(args[0])
        return cm.factor(sz, TRAVERSAL), sz
    if fn in ("lowerAscii", "upperAscii", "substring", "trim") and target is not None:
        sz = size(target)
        return cm.factor(sz, TRAVERSAL), sz
    if fn == "replace" and target is not None and len(args) >= 2:
        return _replace(size(target), size(args[0]), size(args[1]))
    if fn == "split" and target is not None:
        sz = size(target)
        most = sz[1]
        if len(args) > 1 and args[1].expr is not None and args[1].expr.kind == "lit":
            value = args[1].expr.value
            if isinstance(value, int) and not isinstance(value, bool) and kind(args[1].type) == "int":
                most = value % (1 << 64)
        return cm.factor(sz, 2 * TRAVERSAL), (0, most)
    if fn == "join" and target is not None:
        return _join(c, target, args)
    if fn in ("find", "findAll") and target is not None and args:
        sz = size(target)
        text = cm.factor(cm.add(sz, cm.ONE), TRAVERSAL)
        regex = cm.factor(size(args[0]), REGEX)
        return cm.mul(text, regex), (0, sz[1])
    if fn in ("cidr", "isIP", "isCIDR", "quantity", "isQuantity", "semver", "isSemver") and args:
        return cm.factor(size(args[0]), TRAVERSAL), None
    if fn == "ip":
        if overload == "cidr_ip":
            return cm.ONE, None
        if args:
            return cm.factor(size(args[0]), TRAVERSAL), None
    if fn == "ip.isCanonical" and args:
        return cm.factor(size(args[0]), 2 * TRAVERSAL), None
    if fn in ("containsIP", "containsCIDR") and args:
        cost = cm.factor(cm.add(_IP_SIZE, _IP_SIZE), TRAVERSAL)
        if fn == "containsCIDR":
            cost = cm.add(cm.add(cost, cm.factor(_IP_SIZE, TRAVERSAL)), cm.ONE)
        if overload in ("cidr_contains_ip_string", "cidr_contains_cidr_string"):
            cost = cm.add(cost, cm.factor(size(args[0]), TRAVERSAL))
        return cost, None
    if fn == "validate" and args:
        return cm.factor(cm.factor(size(args[0]), TRAVERSAL), MAX_NAME_FORMAT_REGEX_SIZE * REGEX), None
    if fn == "_==_" and len(args) == 2:
        return _equality(args[0], args[1])
    return None


def _list_element(target: Node) -> tuple[StaticType, tuple[str, ...] | None] | None:
    """``listElementNode``: the element type of a list type (with the path ``...@items``), else None."""
    t = target.type
    if isinstance(t, tuple) and len(t) > 1 and t[0] in ("list", "map", "optional_type"):
        path = (*target.path.items(), "@items") if target.path is not None else None
        return t[1], path
    return None


def _replace(sz: Est, old: Est, new: Est) -> Result:
    count_max = count_min = retained_max = retained_min = 0
    if old[0] == 0:
        count_max = sz[1] + 1 if sz[1] < UINT64_MAX else sz[1]
        retained_max = sz[1]
    elif new[1] <= old[0]:
        retained_max = sz[1]
    else:
        count_max = math.ceil(float(sz[1]) / float(old[0]))
    if old[1] == 0:
        count_min = sz[0] + 1 if sz[0] < UINT64_MAX else sz[0]
        retained_min = sz[0]
    elif old[1] <= new[0]:
        retained_min = sz[0]
    else:
        count_min = math.ceil(float(sz[0]) / float(old[1]))
    result = cm.add(cm.mul((count_min, _u64(count_max)), new), (retained_min, retained_max))
    return cm.factor(sz, 2 * TRAVERSAL), result


def _u64(x: int) -> int:
    return min(x, UINT64_MAX)


def _join(c: Sizes, target: Node, args: list[Node]) -> Result:
    items = size_of(c, target)
    sz: Est = cm.ZERO
    elem = _list_element(target)
    if elem is not None:
        sz = cm.mul(items, estimate_size(elem[1]) or cm.UNKNOWN)
    if args:
        sep = size_of(c, args[0])
        separators = (max(items[0] - 1, 0), max(items[1] - 1, 0))
        sz = cm.add(sz, cm.mul(sep, separators))
    return cm.factor(sz, TRAVERSAL), sz


def _equality(lhs: Node, rhs: Node) -> Result | None:
    if lhs.type != rhs.type:
        return None
    k = kind(lhs.type)
    if k in _ONE_EQUAL:
        return cm.ONE, None
    if k == "format":
        return cm.factor((1, MAX_FORMAT_SIZE), TRAVERSAL), None
    if k == "url":
        size: Est = cm.ONE
        if rhs.computed is not None:
            size = cm.union(rhs.computed, rhs.computed)  # Kubernetes reads the right side's size twice
        return cm.factor((1, size[1]), TRAVERSAL), None
    return None


def size_of(c: Sizes, node: Node) -> Est:
    """``sizeOrUnknown`` / the estimators' ``sizeEstimate``: the computed size, else the declared one, else unknown."""
    if node.computed is not None:
        return node.computed
    declared = estimate_size(items(node.path))
    return declared if declared is not None else cm.UNKNOWN


def literal_uint(node: Node, default: int) -> int:
    """ext's ``nodeAsUintValue``: an int literal argument (negative ones as 0), else ``default``."""
    e = node.expr
    if e is None or e.kind != "lit" or kind(e.type) != "int" or not isinstance(e.value, int):
        return default
    return max(int(e.value), 0)


def ceil_factor(n: int, f: float) -> int:
    return math.ceil(n * f)
