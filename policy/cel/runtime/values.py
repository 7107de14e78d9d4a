"""CEL values at run time, their equality and ordering.

Run-time representation: ``bool``, ``int`` (CEL int, int64 range), :class:`Uint`, ``float``,
``str``, ``bytes``, ``None`` (null), ``list``/``tuple``, ``dict``/``Mapping``, :class:`Quantity`,
:class:`Semver` and :class:`TypeValue` (the result of ``type(x)``). Their static types are in
:mod:`gpupolicy.policy.cel.core`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction

from gpupolicy.policy.cel.core import EvalError
from gpupolicy.policy.cel.runtime.time import Duration, Timestamp
from gpupolicy.policy.cel.runtime.time import compare as time_compare
from gpupolicy.policy.quantity import INT64_MAX as INT64_MAX
from gpupolicy.policy.quantity import INT64_MIN as INT64_MIN
from gpupolicy.policy.quantity import Quantity
from gpupolicy.policy.semver import Semver

UINT64_MAX = 2**64 - 1
MAX_STRING = 1 << 20  # a guard against expressions that build huge strings (characters, or bytes)
MAX_LIST = 1 << 20  # and huge lists (elements)


class Uint(int):
    """A CEL ``uint`` (a plain ``int`` is a CEL ``int``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{int(self)}u"


class TypeValue:
    """A CEL type used as a value: ``type(1) == int``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TypeValue) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("TypeValue", self.name))

    def __repr__(self) -> str:
        return self.name


class OptionalValue:
    """A CEL ``optional_type`` value: ``optional.of(x)`` or ``optional.none()``."""

    __slots__ = ("present", "value")

    def __init__(self, present: bool, value: object = None) -> None:
        self.present = present
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OptionalValue) or other.present != self.present:
            return False
        return not self.present or cel_equal(self.value, other.value)

    def __hash__(self) -> int:
        return hash(("OptionalValue", self.present))

    def __repr__(self) -> str:
        return f"optional.of({self.value!r})" if self.present else "optional.none()"


def runtime_type(value: object) -> str:
    """The CEL type name of a run-time value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Uint):
        return "uint"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "bytes"
    if value is None:
        return "null_type"
    if isinstance(value, Quantity):
        return "kubernetes.Quantity"
    if isinstance(value, Semver):
        return "kubernetes.Semver"
    if isinstance(value, TypeValue):
        return "type"
    if isinstance(value, OptionalValue):
        return "optional_type"
    if isinstance(value, Duration):
        return "google.protobuf.Duration"
    if isinstance(value, Timestamp):
        return "google.protobuf.Timestamp"
    cel_type = getattr(value, "CEL_TYPE", None)
    if isinstance(cel_type, str):
        return cel_type
    name = value.__class__.__name__
    if name in ("IP", "CIDR"):
        return f"net.{name}"
    if name == "URL":
        return "kubernetes.URL"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def numeric_cmp(a: int | float, b: int | float) -> int | None:
    """Compare int/uint/double exactly (cross-type numeric comparison); None when NaN is involved."""
    if (isinstance(a, float) and isinstance(b, float)) or not (isinstance(a, float) or isinstance(b, float)):
        if a != a or b != b:  # NaN
            return None
        return (a > b) - (a < b)
    f = a if isinstance(a, float) else b
    if math.isnan(f):
        return None
    if math.isinf(f):
        fa: Fraction | float = a
        fb: Fraction | float = b
    else:
        fa, fb = Fraction(a), Fraction(b)
    return (fa > fb) - (fa < fb)


_SIMPLE = frozenset({str, int, bool, bytes})


class QuantityResult(Quantity):
    """A quantity computed by ``add``/``sub``. Kubernetes returns those as a pointer (``*apiservercel.Quantity``),
    and the value type's ``Equal`` only takes a value: ``quantity("0") == q.add(0)`` (and ``in`` with such a list
    element) is ``no such overload`` there, while ``q.add(0) == quantity("0")`` compares."""

    __slots__ = ()


# Kubernetes' library types: their Equal answers "no such overload" (an error) for a value of another type
# (k8s.io/apiserver pkg/cel: Quantity, Semver and URL via types.MaybeNoSuchOverloadErr, IP and CIDR via
# types.ValOrErr), where cel-go's own types answer false.
_LIBRARY_TYPES = frozenset(
    {"kubernetes.Quantity", "kubernetes.Semver", "kubernetes.URL", "net.IP", "net.CIDR", "kubernetes.NamedFormat"}
)


def _equal(a: object, b: object) -> bool | None:
    """cel-go's ``types.Equal(a, b)``: True, False, or None where ``a.Equal(b)`` is an error.

    Null equals only null; numbers compare by value; otherwise different types are unequal, except that a
    Kubernetes library type on the left errors. Lists and maps (``baseList.Equal``, ``baseMap.Equal``) are
    unequal only where some element is unequal: an element comparison that errors does not count.
    """
    cls = a.__class__
    if cls is b.__class__ and cls in _SIMPLE:
        return a == b
    if a is None or b is None:
        return a is None and b is None
    if is_number(a) and is_number(b):
        return numeric_cmp(a, b) == 0  # type: ignore[arg-type]
    ta, tb = runtime_type(a), runtime_type(b)
    if ta != tb:
        return None if ta in _LIBRARY_TYPES else False
    if b.__class__ is QuantityResult:
        return None
    if ta == "list":
        sa, sb = a, b
        assert isinstance(sa, Sequence) and isinstance(sb, Sequence)
        return len(sa) == len(sb) and all(_equal(x, y) is not False for x, y in zip(sa, sb))
    if ta == "map":
        ma, mb = a, b
        assert isinstance(ma, Mapping) and isinstance(mb, Mapping)
        if len(ma) != len(mb):
            return False
        for key, value in ma.items():
            found, other = map_lookup(mb, key)
            if not found or _equal(value, other) is False:
                return False
        return True
    if isinstance(a, OptionalValue) and isinstance(b, OptionalValue):  # Optional.Equal: the values' Equal
        if a.present != b.present:
            return False
        return not a.present or _equal(a.value, b.value)
    return a == b


def cel_equal(a: object, b: object) -> bool:
    """CEL ``==`` (cel-go's evalEq): heterogeneous equality; a library type compared with another type is
    the error ``no such overload``."""
    if a.__class__ is b.__class__ and a.__class__ in _SIMPLE:  # the common case, without a second call
        return a == b
    result = _equal(a, b)
    if result is None:
        raise EvalError(f"no such overload: {runtime_type(a)} == {runtime_type(b)}")
    return result


def cel_not_equal(a: object, b: object) -> bool:
    """CEL ``!=`` (cel-go's evalNe): ``types.Equal(a, b) != types.True``, so never an error of its own:
    ``dyn(quantity("1")) != 1`` is true."""
    if a.__class__ is b.__class__ and a.__class__ in _SIMPLE:
        return a != b
    return _equal(a, b) is not True


_NUMERIC_FALLBACK = {"double": ("int", "uint"), "int": ("uint",), "uint": ("int",)}


def map_lookup(m: Mapping[object, object], key: object) -> tuple[bool, object]:
    """Find ``key`` in a CEL map as cel-go does (``refValMapAccessor.Find``): the key of the same type first,
    then the same number as another type: a double as an int, else as a uint; an int as a uint; a uint as an
    int (never an int or uint as a double). Bools never match numbers."""
    if type(key) is str:
        try:
            return True, m[key]
        except KeyError:
            return False, None
    if isinstance(m, TypedKeyMap):
        return m.find(key)
    try:
        wanted = [map_key(k) for k in (key, *_numeric_alternatives(key))]
    except EvalError:
        return False, None
    entries: dict[tuple[str, object], object] = {}
    for k, v in m.items():  # a plain dict with keys other than strings: a small literal
        try:
            entries.setdefault(map_key(k), v)
        except EvalError:
            continue
    for tagged in wanted:
        if tagged in entries:
            return True, entries[tagged]
    return False, None


def _numeric_alternatives(key: object) -> list[object]:
    if isinstance(key, bool):
        return []
    if isinstance(key, float):
        if not math.isfinite(key) or key != int(key):
            return []
        whole = int(key)
        return [k for k in (whole if INT64_MIN <= whole <= INT64_MAX else None,
                            Uint(whole) if 0 <= whole <= UINT64_MAX else None) if k is not None]  # fmt: skip
    if isinstance(key, Uint):
        return [int(key)] if key <= INT64_MAX else []
    if isinstance(key, int):
        return [Uint(key)] if key >= 0 else []
    return []


def map_key(key: object) -> tuple[str, object]:
    """A map key with its type, as cel-go keys its maps: ``1``, ``1u``, ``1.0`` and ``true`` are four keys."""
    if isinstance(key, (list, tuple)):
        return "list", tuple(map_key(k) for k in key)
    try:
        hash(key)
    except TypeError:
        raise EvalError(f"unsupported map key type: {runtime_type(key)}") from None
    return runtime_type(key), key


class TypedKeyMap(Mapping[object, object]):
    """A CEL map with keys other than strings (a map literal such as ``{dyn(1): "a", dyn(1u): "b"}``): one entry
    per key and type, as cel-go's Go map of ``ref.Val`` keys; a repeated key of the same type keeps the last
    value. Lookups follow :func:`map_lookup`."""

    __slots__ = ("_entries",)

    def __init__(self, items: Mapping[object, object] | None = None) -> None:
        self._entries: dict[tuple[str, object], tuple[object, object]] = {}
        for key, value in (items or {}).items():
            self.put(key, value)

    def put(self, key: object, value: object) -> None:
        self._entries[map_key(key)] = (key, value)

    def find(self, key: object) -> tuple[bool, object]:
        try:
            for candidate in (key, *_numeric_alternatives(key)):
                entry = self._entries.get(map_key(candidate))
                if entry is not None:
                    return True, entry[1]
        except EvalError:
            pass
        return False, None

    def __getitem__(self, key: object) -> object:
        found, value = self.find(key)
        if not found:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self.find(key)[0]

    def __iter__(self) -> Iterator[object]:
        return (key for key, _ in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def compare(a: object, b: object) -> int | None:
    """Ordering for ``<``, ``<=``, ``>``, ``>=`` (None when NaN is involved: every comparison is false).

    Raises :class:`EvalError` for values without an order.
    """
    if is_number(a) and is_number(b):
        return numeric_cmp(a, b)  # type: ignore[arg-type]
    for cls in (bool, str, bytes):
        if isinstance(a, cls) and isinstance(b, cls):
            return (a > b) - (a < b)  # type: ignore[operator]
    for tcls in (Duration, Timestamp):
        if isinstance(a, tcls) and isinstance(b, tcls):
            return time_compare(a, b)
    raise EvalError(f"no such overload: {runtime_type(a)} < {runtime_type(b)}")
