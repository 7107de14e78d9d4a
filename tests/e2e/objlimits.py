"""Objects at the API server's limits and fields of gate-off features, for the validation differential.

``at_limits()``: valid objects with lists and strings exactly at each limit (an off-by-one shows there).
``gated_off_fields()``: fields whose feature gate is off by default in 1.37; the server drops them, gpupolicy
refuses them (a documented difference).
"""

from __future__ import annotations

from collections.abc import Iterator

from tests.e2e.objedit import (
    Breaker,
    at,
    claim_lists,
    claim_of,
    consumption,
    device,
    do,
    exact,
    many,
    meta,
    on_all_nodes,
    policy,
    selector_expr,
    set_meta,
    spec,
)
from tests.e2e.objgen import DOMAIN


def gated_off_fields() -> Iterator[tuple[str, str, str, Breaker]]:
    """``(gate, field, kind, adder)``: fields of features whose gate is off in the test bed (1.37 defaults). The
    API server drops such a field silently; gpupolicy, which does not implement them, refuses it as unknown."""
    derived = [{"name": f"{DOMAIN}/slot", "expression": "device.attributes['gpu.example.com'].index"}]
    yield (
        "DRADerivedAttributes",
        "derivedAttributes",
        "claim",
        do(lambda o: exact(o)["exactly"].update(derivedAttributes=derived)),
    )
    yield (
        "DRAListTypeAttributes",
        "strings",
        "slice",
        do(lambda o: device(o).update(attributes={"links": {"strings": ["a", "b"]}})),
    )
    yield (
        "DRAPartitionableDevicesType",
        "partitionTypeAttribute",
        "slice",
        do(lambda o: spec(o).update(partitionTypeAttribute=f"{DOMAIN}/profile")),
    )
    yield (
        "DRAOptionalNodeOperations",
        "skipNodeOperations",
        "slice",
        do(lambda o: spec(o).update(skipNodeOperations=["NodePrepareResources"])),
    )
    yield (
        "DRANodeAllocatableResources",
        "nodeAllocatableResources",
        "slice",
        do(lambda o: device(o).update(nodeAllocatableResources={"cpu": {"overhead": {"perPod": "1"}}})),
    )
    yield (
        "DRADeviceCompatibilityGroups",
        "compatibilityGroups",
        "slice",
        do(lambda o: consumption(o)[0].update(compatibilityGroups=["a"])),
    )


def at_limits() -> Iterator[tuple[str, str, Breaker]]:
    """Valid objects with lists and strings exactly at the API server's limits (an off-by-one shows here)."""
    yield (
        "requests_32",
        "claim",
        do(
            lambda o: claim_of(o).update(
                requests=many(32, lambda k: {"name": f"r{k}", "exactly": {"deviceClassName": "c"}}),
                constraints=[],
                config=[],
            )
        ),
    )
    yield (
        "subrequests_8",
        "claim",
        do(
            lambda o: claim_of(o).update(
                requests=[
                    {"name": "r", "firstAvailable": many(8, lambda k: {"name": f"s{k}", "deviceClassName": "c"})}
                ],
                constraints=[],
                config=[],
            )
        ),
    )
    yield "selectors_32", "class", at(spec, "selectors", many(32, lambda k: {"cel": {"expression": "true"}}))
    yield (
        "constraints_32",
        "claim",
        do(lambda o: claim_of(o).update(constraints=many(32, lambda k: {"matchAttribute": f"{DOMAIN}/m"}))),
    )
    yield "config_32", "class", at(spec, "config", many(32, lambda k: {"opaque": {"driver": "a.b", "parameters": {}}}))
    yield "devices_128", "slice", do(lambda o: on_all_nodes(o).update(devices=many(128, lambda k: {"name": f"d{k}"})))
    yield (
        "devices_64_taints",
        "slice",
        do(
            lambda o: spec(o).update(
                devices=many(64, lambda k: {"name": f"d{k}", "taints": [{"key": "k", "effect": "NoSchedule"}]})
            )
        ),
    )
    yield "attributes_32", "slice", at(device, "attributes", {f"a{k}": {"int": k} for k in range(32)})
    yield (
        "names_at_max",
        "slice",
        do(
            lambda o: device(o).update(
                name="d" * 63,
                attributes={("x" * 50 + ".example.com")[:63] + "/" + "i" * 32: {"string": "s" * 64}},
                taints=many(16, lambda k: {"key": f"k{k}", "value": "v" * 63, "effect": "NoSchedule"}),
                bindingConditions=many(4, lambda k: f"c{k}"),
                bindingFailureConditions=many(4, lambda k: f"f{k}"),
            )
        ),
    )
    yield (
        "counter_sets_8",
        "slice",
        do(
            lambda o: (
                spec(o).update(
                    sharedCounters=many(
                        8, lambda k: {"name": f"s{k}", "counters": {f"c{j}": {"value": "1"} for j in range(32)}}
                    )
                )
                or spec(o).pop("devices", None)
            )
        ),
    )
    yield (
        "consumptions_2",
        "slice",
        at(
            device,
            "consumesCounters",
            many(2, lambda k: {"counterSet": f"s{k}", "counters": {f"c{j}": {"value": "1"} for j in range(32)}}),
        ),
    )
    yield (
        "valid_values_10",
        "slice",
        do(lambda o: policy(o, {"default": "1Gi", "validValues": [f"{k}Gi" for k in range(1, 11)]})),
    )
    yield "expression_10k", "class", do(lambda o: selector_expr(o, '"' + "a" * (10 * 1024 - 8) + '" != ""'))
    yield (
        "parameters_10k",
        "class",
        do(
            lambda o: spec(o).update(config=[{"opaque": {"driver": "a.b", "parameters": {"b": "x" * (10 * 1024 - 8)}}}])
        ),
    )
    yield "names_253", "claim", set_meta("name", ".".join(["a" * 63] * 4)[:253])
    for empty in (None, []):
        label = "null" if empty is None else "empty"
        yield f"optional_lists_{label}", "claim", do(lambda o, e=empty: claim_lists(o, e))
        yield (
            f"optional_lists_{label}",
            "slice",
            do(
                lambda o, e=empty: device(o).update(
                    taints=e, consumesCounters=e, bindingConditions=e, bindingFailureConditions=e
                )
            ),
        )
        yield (
            f"optional_maps_{label}",
            "slice",
            do(
                lambda o, e=empty: device(o).update(
                    attributes=None if e is None else {}, capacity=None if e is None else {}
                )
            ),
        )
        yield f"optional_lists_{label}", "class", do(lambda o, e=empty: spec(o).update(selectors=e, config=e))
        yield (
            f"optional_meta_{label}",
            "template",
            do(
                lambda o, e=empty: meta(o).update(
                    labels=None if e is None else {}, annotations=None if e is None else {}
                )
            ),
        )
