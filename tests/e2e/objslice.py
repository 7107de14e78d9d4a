"""ResourceSlice mutations for the validation differential: one or more per rule of ``validateResourceSliceSpec``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from tests.e2e.objedit import (
    Breaker,
    at,
    consumption,
    counter_sets,
    device,
    do,
    many,
    node_selection,
    on_device,
    policy,
    spec,
)
from tests.e2e.objgen import DOMAIN, Obj


def slice_rules() -> Iterator[tuple[str, str, Breaker]]:
    pool = lambda o: spec(o)["pool"]  # noqa: E731

    yield "slice_driver", "slice", at(spec, "driver", "Bad_Driver", "", "a" * 60 + ".com", "nodots")
    yield "slice_pool_name", "slice", at(pool, "name", "", "Pool_A", "a//b", "a" * 254, "/a")
    yield "slice_pool_count", "slice", at(pool, "resourceSliceCount", 0, -1, ...)
    yield "slice_pool_generation", "slice", at(pool, "generation", -1)
    yield "slice_node_none", "slice", do(lambda o: node_selection(o))
    yield "slice_node_two", "slice", do(lambda o: node_selection(o, nodeName="node-a", allNodes=True))
    yield "slice_node_name_empty", "slice", do(lambda o: node_selection(o, nodeName=""))
    yield "slice_node_name_format", "slice", do(lambda o: node_selection(o, nodeName="Node_A"))
    yield "slice_all_nodes_false", "slice", do(lambda o: node_selection(o, nodeName="n", allNodes=False))
    yield (
        "slice_per_device_false",
        "slice",
        do(lambda o: node_selection(o, allNodes=True, perDeviceNodeSelection=False)),
    )
    term = {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}
    yield (
        "slice_selector_two_terms",
        "slice",
        do(lambda o: node_selection(o, nodeSelector={"nodeSelectorTerms": [term, term]})),
    )
    yield "slice_selector_no_terms", "slice", do(lambda o: node_selection(o, nodeSelector={"nodeSelectorTerms": []}))
    for label, expr in (
        ("in_no_values", {"key": "gpu", "operator": "In", "values": []}),
        ("exists_values", {"key": "gpu", "operator": "Exists", "values": ["a"]}),
        ("bad_key", {"key": "bad key", "operator": "Exists"}),
        ("gt_text", {"key": "gpus", "operator": "Gt", "values": ["two"]}),
        ("operator", {"key": "gpus", "operator": "Maybe"}),
        ("bad_value", {"key": "gpu", "operator": "In", "values": ["bad value!"]}),
    ):
        yield (
            f"slice_selector_{label}",
            "slice",
            do(lambda o, e=expr: node_selection(o, nodeSelector={"nodeSelectorTerms": [{"matchExpressions": [e]}]})),
        )
    yield (
        "slice_selector_match_fields",
        "slice",
        do(
            lambda o: node_selection(
                o,
                nodeSelector={
                    "nodeSelectorTerms": [{"matchFields": [{"key": "spec.x", "operator": "In", "values": ["a"]}]}]
                },
            )
        ),
    )
    yield (
        "slice_counters_and_devices",
        "slice",
        do(
            lambda o: spec(o).update(
                devices=[{"name": "d"}], sharedCounters=[{"name": "s", "counters": {"c": {"value": "1"}}}]
            )
        ),
    )
    yield (
        "slice_devices_too_many",
        "slice",
        do(lambda o: spec(o).update(devices=many(129, lambda i: {"name": f"d{i}"}))),
    )
    yield (
        "slice_devices_too_many_taints",
        "slice",
        do(
            lambda o: spec(o).update(
                devices=many(65, lambda i: {"name": f"d{i}", "taints": [{"key": "k", "effect": "NoSchedule"}]})
            )
        ),
    )
    yield "device_name", "slice", at(device, "name", "GPU-0", "a" * 64, "", "gpu_0", "gpu-0\n")
    yield "device_duplicate", "slice", do(lambda o: spec(o).update(devices=[device(o), dict(device(o))]))
    yield "device_attributes_too_many", "slice", at(device, "attributes", {f"a{i}": {"int": i} for i in range(33)})
    yield (
        "device_attributes_and_capacity_too_many",
        "slice",
        do(
            lambda o: device(o).update(
                attributes={f"a{i}": {"int": i} for i in range(20)},
                capacity={f"c{i}": {"value": "1"} for i in range(13)},
            )
        ),
    )
    for label, name in (
        ("format", "Bad Name"),
        ("domain", "bad_domain/x"),
        ("id_too_long", "a" * 33),
        ("domain_too_long", "a" * 60 + ".example.com/x"),
        ("empty_id", f"{DOMAIN}/"),
        ("empty_domain", "/x"),
        ("id_leading_digit", "9lives"),
    ):
        yield f"attribute_name_{label}", "slice", do(lambda o, n=name: device(o).update(attributes={n: {"int": 1}}))
        yield f"capacity_name_{label}", "slice", do(lambda o, n=name: device(o).update(capacity={n: {"value": "1"}}))
    yield "attribute_no_value", "slice", at(device, "attributes", {"a": {}})
    yield "attribute_two_values", "slice", at(device, "attributes", {"a": {"int": 1, "string": "x"}})
    yield "attribute_string_too_long", "slice", at(device, "attributes", {"a": {"string": "x" * 65}})
    yield (
        "attribute_version",
        "slice",
        at(device, "attributes", {"a": {"version": "1.0"}}, {"a": {"version": "v1.0.0"}}, {"a": {"version": "01.0.0"}}),
    )
    yield "attribute_version_too_long", "slice", at(device, "attributes", {"a": {"version": "1.0.0-" + "a" * 60}})
    yield "attribute_version_empty", "slice", at(device, "attributes", {"a": {"version": ""}})
    yield (
        "slice_devices_too_many_counters",
        "slice",
        do(
            lambda o: spec(o).update(
                devices=many(
                    65,
                    lambda i: {
                        "name": f"d{i}",
                        "consumesCounters": [{"counterSet": "s", "counters": {"c": {"value": "1"}}}],
                    },
                )
            )
        ),
    )
    yield "attribute_wrong_type", "slice", at(device, "attributes", {"a": {"int": "1"}}, {"a": {"bool": "yes"}})
    yield "capacity_value_missing", "slice", at(device, "capacity", {"memory": {}})
    yield "capacity_value_bad", "slice", at(device, "capacity", {"memory": {"value": "lots"}})
    yield (
        "request_policy_single",
        "slice",
        do(
            lambda o: device(o).update(
                allowMultipleAllocations=False, capacity={"m": {"value": "1", "requestPolicy": {}}}
            )
        ),
    )
    for label, pol in (
        ("both", {"default": "1Gi", "validValues": ["1Gi"], "validRange": {"min": "1Gi"}}),
        ("values_no_default", {"validValues": ["1Gi"]}),
        ("range_no_default", {"validRange": {"min": "1Gi"}}),
        ("values_unsorted", {"default": "2Gi", "validValues": ["2Gi", "1Gi"]}),
        ("values_duplicate", {"default": "1Gi", "validValues": ["1Gi", "1Gi"]}),
        ("values_over_capacity", {"default": "1Gi", "validValues": ["1Gi", "100Gi"]}),
        ("default_not_valid", {"default": "3Gi", "validValues": ["1Gi", "2Gi"]}),
        ("values_too_many", {"default": "1Gi", "validValues": [f"{i}Gi" for i in range(1, 12)]}),
        ("range_no_min", {"default": "1Gi", "validRange": {"max": "2Gi"}}),
        ("range_min_over_capacity", {"default": "90Gi", "validRange": {"min": "90Gi"}}),
        ("range_default_below_min", {"default": "1Gi", "validRange": {"min": "2Gi"}}),
        ("range_max_below_min", {"default": "2Gi", "validRange": {"min": "2Gi", "max": "1Gi"}}),
        ("range_max_over_capacity", {"default": "2Gi", "validRange": {"min": "2Gi", "max": "100Gi"}}),
        ("range_default_over_max", {"default": "3Gi", "validRange": {"min": "1Gi", "max": "2Gi"}}),
        ("range_step_zero", {"default": "1Gi", "validRange": {"min": "1Gi", "step": "0"}}),
        ("range_step_big", {"default": "1Gi", "validRange": {"min": "1Gi", "step": "80Gi"}}),
        ("range_not_multiple", {"default": "1500Mi", "validRange": {"min": "1Gi", "step": "1Gi"}}),
        ("default_over_capacity", {"default": "100Gi"}),
        ("default_negative", {"default": "-1"}),
        ("range_fraction", {"default": "500m", "validRange": {"min": "500m", "step": "250m"}}),
        ("range_step_rounded", {"default": "750m", "validRange": {"min": "500m", "step": "500m"}}),
        ("range_step_rounded_off", {"default": "3", "validRange": {"min": "0", "step": "1500m"}}),
        ("range_negative_min", {"default": "0", "validRange": {"min": "-1", "step": "1"}}),
        ("range_negative_no_step", {"default": "0", "validRange": {"min": "-1"}}),
        ("values_same_integer", {"default": "2", "validValues": ["1500m", "2"]}),
    ):
        yield f"request_policy_{label}", "slice", do(lambda o, p=pol: policy(o, dict(p)))
    taint: Callable[[Obj], Obj] = lambda o: device(o).setdefault("taints", [{"key": "k", "effect": "NoSchedule"}])[0]  # noqa: E731
    yield "taint_key", "slice", at(taint, "key", "bad key", "", "-k")
    yield "taint_value", "slice", at(taint, "value", "bad value!", "a" * 64)
    yield "taint_effect", "slice", at(taint, "effect", "Maybe", "", ...)
    yield "taints_too_many", "slice", at(device, "taints", many(17, lambda i: {"key": f"k{i}", "effect": "NoSchedule"}))
    cons0: Callable[[Obj], Obj] = lambda o: consumption(o)[0]  # noqa: E731
    yield "consumption_set_missing", "slice", at(cons0, "counterSet", ..., "")
    yield "consumption_set_name", "slice", at(cons0, "counterSet", "Set_0", "a" * 64)
    yield "consumption_counters_empty", "slice", at(cons0, "counters", {}, ...)
    yield "consumption_counter_name", "slice", at(cons0, "counters", {"Mem": {"value": "1"}}, {"a.b": {"value": "1"}})
    yield "consumption_counters_too_many", "slice", at(cons0, "counters", {f"c{i}": {"value": "1"} for i in range(33)})
    yield (
        "consumptions_too_many",
        "slice",
        at(device, "consumesCounters", many(3, lambda i: {"counterSet": f"s{i}", "counters": {"c": {"value": "1"}}})),
    )
    yield (
        "consumption_duplicate",
        "slice",
        at(device, "consumesCounters", many(2, lambda i: {"counterSet": "s", "counters": {"c": {"value": "1"}}})),
    )
    set0: Callable[[Obj], Obj] = lambda o: counter_sets(o)[0]  # noqa: E731
    yield "counter_set_name", "slice", at(set0, "name", "", ..., "Set_0", "a" * 64)
    yield "counter_set_counters", "slice", at(set0, "counters", {}, ..., {"Bad": {"value": "1"}})
    yield "counter_set_too_many_counters", "slice", at(set0, "counters", {f"c{i}": {"value": "1"} for i in range(33)})
    yield "counter_set_duplicate", "slice", do(lambda o: counter_sets(o).append(dict(counter_sets(o)[0])))
    yield (
        "counter_sets_too_many",
        "slice",
        do(
            lambda o: (
                spec(o).update(
                    sharedCounters=many(9, lambda i: {"name": f"s{i}", "counters": {"c": {"value": "1"}}}), devices=None
                )
                or spec(o).pop("devices")
            )
        ),
    )
    yield "counter_value_bad", "slice", at(set0, "counters", {"c": {"value": "x"}}, {"c": {}})
    yield "device_node_without_per_device", "slice", on_device({"nodeName": "n"}, per_device=False)
    yield "device_node_none", "slice", on_device({})
    yield "device_node_two", "slice", on_device({"nodeName": "n", "allNodes": True})
    yield "device_node_name_empty", "slice", on_device({"nodeName": ""})
    yield "device_all_nodes_false", "slice", on_device({"allNodes": False, "nodeName": "n"})
    yield "device_node_name_format", "slice", on_device({"nodeName": "Bad_Node"})
    for label, conds, fails in (
        ("too_many", [f"c{i}" for i in range(5)], ["f"]),
        ("failures_too_many", ["c"], [f"f{i}" for i in range(5)]),
        ("duplicate", ["c", "c"], ["f"]),
        ("overlap", ["c"], ["c"]),
        ("only_failures", None, ["f"]),
        ("only_conditions", ["c"], None),
        ("name", ["bad name!"], ["f"]),
    ):
        yield (
            f"binding_{label}",
            "slice",
            do(lambda o, c=conds, f=fails: device(o).update(bindingConditions=c, bindingFailureConditions=f)),
        )
    yield (
        "binds_to_node_alone",
        "slice",
        do(lambda o: device(o).update(bindsToNode=True, bindingConditions=None, bindingFailureConditions=None)),
    )
