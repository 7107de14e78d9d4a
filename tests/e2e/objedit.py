"""Where and how the validation differential edits a generated object (shared by the mutation modules).

A ``Breaker`` edits a valid object in place; :func:`at` and :func:`each` try one of their values per call, in turn,
and say how many there are (``variants``), so that :func:`tests.e2e.objgen.generate` tries every value.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from tests.e2e.objgen import Obj

Breaker = Callable[[Obj, random.Random], None]
KINDS_ALL = ("class", "claim", "template", "slice")
CLAIMS = ("claim", "template")


# -- where to break -------------------------------------------------------------------------------------------------


def claim_of(obj: Obj) -> Obj:
    spec = obj["spec"]
    devices: Obj = spec["spec"]["devices"] if obj["kind"] == "ResourceClaimTemplate" else spec["devices"]
    return devices


def fields(obj: Obj) -> Obj:
    """The first request's fields (its ``exactly``, or its first subrequest)."""
    req = claim_of(obj)["requests"][0]
    return req["exactly"] if "exactly" in req else req["firstAvailable"][0]


def exact(obj: Obj) -> Obj:
    """The first request, turned into an exact request if it was not one (references to it stay valid)."""
    claim = claim_of(obj)
    req = claim["requests"][0]
    if "exactly" not in req:
        req["exactly"] = {k: v for k, v in req.pop("firstAvailable")[0].items() if k != "name"}
        sub = f"{req['name']}/"
        for group in ("constraints", "config"):
            for entry in claim.get(group, []):
                entry["requests"] = [r for r in entry.get("requests", []) if not r.startswith(sub)] or None
                if entry["requests"] is None:
                    del entry["requests"]
    return req


def first_available(obj: Obj) -> list[Obj]:
    req = claim_of(obj)["requests"][0]
    if "firstAvailable" not in req:
        req["firstAvailable"] = [{"name": "alt", **req.pop("exactly")}]
        req["firstAvailable"][0].pop("adminAccess", None)
    subs: list[Obj] = req["firstAvailable"]
    return subs


def meta(obj: Obj) -> Obj:
    m: Obj = obj["metadata"]
    return m


def spec(obj: Obj) -> Obj:
    s: Obj = obj["spec"]
    return s


def device(obj: Obj) -> Obj:
    s = spec(obj)
    if "devices" not in s:
        s.pop("sharedCounters", None)
        s["devices"] = [{"name": "gpu-0"}]
        if s.get("perDeviceNodeSelection"):
            s["devices"][0]["allNodes"] = True
    d: Obj = s["devices"][0]
    return d


def multi_device(obj: Obj) -> Obj:
    """The first device, allowing multiple allocations, with a capacity ``memory`` of 80Gi."""
    d = device(obj)
    d["allowMultipleAllocations"] = True
    d.setdefault("capacity", {})["memory"] = {"value": "80Gi"}
    return d


def policy(obj: Obj, policy: Obj) -> None:
    multi_device(obj)["capacity"]["memory"]["requestPolicy"] = policy


def counter_sets(obj: Obj) -> list[Obj]:
    s = spec(obj)
    s.pop("devices", None)
    if not s.get("sharedCounters"):
        s["sharedCounters"] = [{"name": "set-0", "counters": {"memory": {"value": "1Gi"}}}]
    sets: list[Obj] = s["sharedCounters"]
    return sets


def consumption(obj: Obj) -> list[Obj]:
    d = device(obj)
    if not d.get("consumesCounters"):
        d["consumesCounters"] = [{"counterSet": "set-0", "counters": {"memory": {"value": "1Gi"}}}]
    cons: list[Obj] = d["consumesCounters"]
    return cons


def node_selection(obj: Obj, **fields: Any) -> None:
    s = spec(obj)
    for key in ("nodeName", "nodeSelector", "allNodes", "perDeviceNodeSelection"):
        s.pop(key, None)
    for d in s.get("devices", []):
        for key in ("nodeName", "nodeSelector", "allNodes"):
            d.pop(key, None)
    s.update(fields)


def on_device(fields: Obj, per_device: bool = True) -> Breaker:
    """Node selection per device: the slice in that mode (or, with ``per_device`` False, on one node) and
    ``fields`` on its first device."""

    def breaker(obj: Obj, r: random.Random) -> None:
        if per_device:
            node_selection(obj, perDeviceNodeSelection=True)
        else:
            node_selection(obj, nodeName="n")
        device(obj).update(fields)

    return breaker


def claim_lists(obj: Obj, empty: list[Obj] | None) -> None:
    fields(obj).update(selectors=empty, tolerations=empty)
    claim_of(obj).update(constraints=empty, config=empty)


def on_all_nodes(obj: Obj) -> Obj:
    """The slice's spec, its devices for all nodes (no per-device node selection)."""
    node_selection(obj, allNodes=True)
    return spec(obj)


def selector_expr(obj: Obj, expression: str) -> None:
    if obj["kind"] == "DeviceClass":
        spec(obj)["selectors"] = [{"cel": {"expression": expression}}]
    else:
        fields(obj)["selectors"] = [{"cel": {"expression": expression}}]


def set_meta(key: str, value: Any) -> Breaker:
    def breaker(obj: Obj, r: random.Random) -> None:
        if value is None:
            obj["metadata"].pop(key, None)
        else:
            obj["metadata"][key] = value

    return breaker


def at(path: Callable[[Obj], Obj], key: str, *values: Any) -> Breaker:
    """Set ``key`` of the dict ``path`` finds to one of ``values`` in turn (``...`` deletes it)."""

    calls = [0]

    def breaker(obj: Obj, r: random.Random) -> None:
        target = path(obj)
        value = values[calls[0] % len(values)]  # each variant the next value, so every value is tried
        calls[0] += 1
        if value is ...:
            target.pop(key, None)
        else:
            target[key] = value

    breaker.variants = len(values)  # type: ignore[attr-defined]  # generate() tries each value at least once
    return breaker


def do(fn: Callable[[Obj], None]) -> Breaker:
    return lambda obj, r: fn(obj)


def many(n: int, make: Callable[[int], Any]) -> list[Any]:
    return [make(i) for i in range(n)]


def each(make: Callable[[Obj, Any], None], *values: Any) -> Breaker:
    """Like :func:`at`, for edits that are not one key: ``make(obj, value)`` with each of ``values`` in turn."""
    calls = [0]

    def breaker(obj: Obj, r: random.Random) -> None:
        make(obj, values[calls[0] % len(values)])
        calls[0] += 1

    breaker.variants = len(values)  # type: ignore[attr-defined]
    return breaker
