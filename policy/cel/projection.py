"""Which parts of ``device`` an expression reads, and a cache key built from just those parts.

Clusters hold thousands of identical GPUs. A selector that reads only
``device.attributes["gpu.nvidia.com"].productName`` and ``device.capacity[...].memory`` gives
the same answer for every device with the same product name and memory, so results are cached
by the *projection* of the device onto what the expression references. The analysis follows
constant paths (``device.attributes["d"].x``, ``device.attributes["d"]["x"]``, ``"x" in
device.attributes["d"]``, ``has(device.attributes["d"].x)``) through ``cel.bind`` variables;
anything dynamic widens the projection to a whole domain, or to the whole device.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

from gpupolicy.policy.cel.ast import Bind, Call, Comprehension, Ident, Index, Literal, Node, Select, children
from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.quantity import Quantity
from gpupolicy.policy.semver import Semver

ALL = None  # every ID of a domain
Path = tuple[str, ...]
_MAPS = ("attributes", "capacity")


@dataclass
class Projection:
    """What an expression reads from ``device``."""

    whole: bool = False
    driver: bool = False
    allow_multiple: bool = False
    maps: dict[str, dict[str, set[str] | None] | None] = field(
        default_factory=lambda: {"attributes": {}, "capacity": {}}
    )

    def record(self, path: Path) -> None:
        if len(path) == 1:
            self.whole = True
        elif path[1] == "driver":
            self.driver = True
        elif path[1] == "allowMultipleAllocations":
            self.allow_multiple = True
        elif path[1] in _MAPS:
            self._record_map(path[1], path[2:])
        else:
            self.whole = True

    def _record_map(self, which: str, rest: Path) -> None:
        domains = self.maps[which]
        if domains is None:
            return
        if not rest:
            self.maps[which] = None
            return
        ids = domains.setdefault(rest[0], set())
        if len(rest) == 1:
            domains[rest[0]] = ALL
        elif ids is not None:
            ids.add(rest[1])


def analyze(ast: Node, variable: str = "device") -> Projection:
    projection = Projection()
    _Walker(projection, variable).visit(ast, {})
    return projection


class _Walker:
    def __init__(self, projection: Projection, variable: str) -> None:
        self.projection = projection
        self.variable = variable

    def path(self, node: Node, env: Mapping[str, Path | None]) -> Path | None:
        if isinstance(node, Ident):
            if node.name in env:
                return env[node.name]
            return (node.name,) if node.name == self.variable else None
        key: str | None = None
        if isinstance(node, Select) and not node.test_only:
            key = node.field
        elif isinstance(node, Index) and isinstance(node.index, Literal) and isinstance(node.index.value, str):
            key = node.index.value
        else:
            return None
        base = self.path(node.operand, env)
        if base is None or len(base) >= 4 or (len(base) >= 2 and base[1] not in _MAPS):
            return None
        return (*base, key)

    def visit(self, node: Node, env: dict[str, Path | None]) -> None:
        path = self.path(node, env)
        if path is not None:
            self.projection.record(path)
            return
        if isinstance(node, Select) and node.test_only:
            base = self.path(node.operand, env)
            if base is not None and len(base) == 3:
                self.projection.record((*base, node.field))
                return
        if isinstance(node, Call) and node.name == "@in" and isinstance(node.args[0], Literal):
            base = self.path(node.args[1], env)
            if base is not None and len(base) == 3 and isinstance(node.args[0].value, str):
                self.projection.record((*base, node.args[0].value))
                return
        if isinstance(node, Bind):
            init_path = self.path(node.init, env)
            if init_path is None:
                self.visit(node.init, env)
            inner = dict(env)
            inner[node.var] = init_path  # the body's uses of the variable decide what is read
            self.visit(node.body, inner)
            return
        if isinstance(node, Comprehension):
            self.visit(node.range, env)
            inner = dict(env)
            inner[node.var] = None
            if node.var2 is not None:
                inner[node.var2] = None
            for sub in (node.body, node.predicate):
                if sub is not None:
                    self.visit(sub, inner)
            return
        for child in children(node):
            self.visit(child, env)


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()
_EMPTY: Mapping[str, object] = {}


def _tag(value: object) -> Hashable:
    # bool and int collide in Python (True == 1): keep booleans apart.
    return ("bool", value) if value.__class__ is bool else value


def _whole_map(domains: Mapping[str, Mapping[str, object]]) -> Hashable:
    return tuple(sorted((d, tuple(sorted((k, _tag(v)) for k, v in ids.items()))) for d, ids in domains.items()))


KeyFn = Callable[[DeviceView], Hashable]


def _plain_key(which: str, lookup: str) -> str:
    """Source for a cache-key part made of builtin types only, so hashing it stays in C.

    Capacities are quantities: keyed by exact value (nano-units). Attributes: booleans are tagged
    (True == 1 in Python), versions become their precedence tuple (build metadata is invisible
    to CEL), strings and ints stay as they are.
    """
    if which == "capacity":
        return f"(_v._nanos if (_v := {lookup}).__class__ is Quantity else _v)"
    return f'(("bool", _v) if (_c := (_v := {lookup}).__class__) is bool else _v._k if _c is Semver else _v)'


def key_function(projection: Projection) -> KeyFn:
    """Build ``device -> hashable key`` that differs only when the referenced parts differ.

    The function is generated as straight-line code (one dict lookup per referenced attribute),
    because it runs once per device and selector on a cache miss.
    """
    if projection.whole:
        return lambda d: (d.driver, d.allow_multiple_allocations, _whole_map(d.attributes), _whole_map(d.capacity))
    parts: list[str] = []
    if projection.driver:
        parts.append("d.driver")
    if projection.allow_multiple:
        parts.append("d.allow_multiple_allocations")
    for which in _MAPS:
        domains = projection.maps[which]
        if domains is None:
            parts.append(f"_whole_map(d.{which})")
            continue
        for domain, ids in sorted(domains.items()):
            source = f"d.{which}.get({domain!r}, _EMPTY)"
            if ids is ALL:
                parts.append(f"_whole_map({{{domain!r}: {source}}})")
            else:
                parts.extend(_plain_key(which, f"{source}.get({ident!r}, ABSENT)") for ident in sorted(ids))
    body = parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    if not parts:
        body = "()"
    namespace: dict[str, object] = {
        "_tag": _tag,
        "_whole_map": _whole_map,
        "_EMPTY": _EMPTY,
        "ABSENT": ABSENT,
        "Semver": Semver,
        "Quantity": Quantity,
    }
    exec(f"def key(d):\n    return {body}\n", namespace)  # generated from repr()'d constants only
    key: KeyFn = namespace["key"]  # type: ignore[assignment]
    return key
