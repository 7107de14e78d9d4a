"""Device views for CEL and pools as the structured allocator sees them."""

from __future__ import annotations

from typing import Any

import yaml

from gpupolicy.policy.k8s.common import DeviceTaint, DeviceToleration, toleration_tolerates
from gpupolicy.policy.k8s.load import load_text
from gpupolicy.policy.k8s.slice import ResourceSlice
from gpupolicy.policy.k8s.view import device_view, gather_pools
from gpupolicy.policy.quantity import Quantity
from gpupolicy.policy.semver import Semver

from .conftest import read_data


def _slices(name: str = "valid_v1.yaml") -> list[ResourceSlice]:
    return [s.obj for s in load_text(read_data(name), name).slices]


def _slice(name: str, pool: str, generation: int, count: int, devices: list[str], **spec: Any) -> ResourceSlice:
    body = {
        "driver": "gpu.example.com",
        "pool": {"name": pool, "generation": generation, "resourceSliceCount": count},
        "nodeName": "node-1",
        "devices": [{"name": d} for d in devices],
        **spec,
    }
    return ResourceSlice.model_validate({"metadata": {"name": name}, "spec": body})


def test_device_view_qualifies_names_and_types_values() -> None:
    slc = _slices()[0]
    view = device_view(slc, slc.devices[0])
    assert view.driver == "gpu.example.com"
    attrs = view.attributes["gpu.example.com"]
    assert attrs["productName"] == "NVIDIA H100 80GB HBM3"
    assert attrs["index"] == 0 and attrs["mig"] is False
    assert attrs["driverVersion"] == Semver.parse("550.54.15")
    assert view.attributes["resource.kubernetes.io"] == {"pciBusID": "0000:3b:00.0"}
    assert view.capacity == {"gpu.example.com": {"memory": Quantity("80Gi")}}
    assert view.allow_multiple_allocations is False
    assert device_view(slc, slc.devices[1]).allow_multiple_allocations is True


def test_pools_resolve_node_selection_counters_and_capacity() -> None:
    pools = {str(p.id): p for p in gather_pools(_slices())}
    assert list(pools) == ["gpu.example.com/fabric/rack-1", "gpu.example.com/node-1"]
    node = pools["gpu.example.com/node-1"]
    assert node.usable and node.generation == 3 and len(node.slices) == 2
    assert [d.name for d in node.devices] == ["gpu-0", "gpu-3"]
    assert node.counter_sets == {"gpu-2-counters": {"memory": Quantity("40Gi"), "multiprocessors": Quantity(98)}}
    gpu3 = node.devices[1]
    assert gpu3.node_name == "node-1" and gpu3.available_on("node-1", {}) and not gpu3.available_on("node-2", {})
    assert gpu3.allow_multiple_allocations and gpu3.binds_to_node
    assert [t.key for t in gpu3.taints] == ["example.com/maintenance"]
    policy = gpu3.capacity["gpu.example.com/memory"].request_policy
    assert policy is not None and policy.valid_range is not None and policy.valid_range.step == Quantity("10Gi")

    fabric = pools["gpu.example.com/fabric/rack-1"]
    mig, remote0, remote1 = fabric.devices
    assert mig.counters == {"gpu-2-counters": {"memory": Quantity("10Gi"), "multiprocessors": Quantity(14)}}
    # The counter set lives in another pool: the allocator would fail on this device.
    assert fabric.invalid and "unknown counter set gpu-2-counters" in fabric.invalid_reason
    assert remote0.available_on("node-7", {"topology.kubernetes.io/zone": "b"})
    assert not remote0.available_on("node-7", {"topology.kubernetes.io/zone": "c"})
    assert remote1.all_nodes and remote1.available_on("anything", {})


def test_only_the_newest_generation_counts_and_incomplete_pools_are_flagged() -> None:
    old = _slice("a", "p", 1, 1, ["old"])
    new1 = _slice("b", "p", 2, 2, ["gpu-1"])
    pools = gather_pools([old, new1])
    assert len(pools) == 1
    pool = pools[0]
    assert pool.generation == 2 and [d.name for d in pool.devices] == ["gpu-1"]
    assert pool.incomplete and not pool.invalid and not pool.usable
    new0 = _slice("a2", "p", 2, 2, ["gpu-0"])
    pool = gather_pools([new1, old, new0])[0]
    assert not pool.incomplete and [s.name for s in pool.slices] == ["a2", "b"]
    assert [d.name for d in pool.devices] == ["gpu-0", "gpu-1"]


def test_duplicate_device_names_across_slices_make_a_pool_invalid() -> None:
    pool = gather_pools([_slice("a", "p", 0, 2, ["gpu-0"]), _slice("b", "p", 0, 2, ["gpu-0"])])[0]
    assert pool.invalid and pool.invalid_reason == "duplicate device name gpu-0"


def test_counter_problems_make_a_pool_invalid() -> None:
    counters = {"sharedCounters": [{"name": "s", "counters": {"mem": {"value": "1"}}}]}
    counter_slice = ResourceSlice.model_validate(
        {
            "metadata": {"name": "c"},
            "spec": {
                "driver": "d.com",
                "pool": {"name": "p", "generation": 0, "resourceSliceCount": 2},
                "nodeName": "n",
                **counters,
            },
        }
    )
    wire = yaml.safe_load("""
metadata: {name: d}
spec:
  driver: d.com
  pool: {name: p, generation: 0, resourceSliceCount: 2}
  nodeName: n
  devices:
  - name: x
    consumesCounters: [{counterSet: s, counters: {mem: {value: "1"}, sm: {value: "1"}}}]
""")
    pool = gather_pools([counter_slice, ResourceSlice.model_validate(wire)])[0]
    assert pool.invalid and pool.invalid_reason == "device x consumes unknown counter sm of counter set s"


def test_tolerations() -> None:
    taint = DeviceTaint.model_validate({"key": "k", "value": "v", "effect": "NoSchedule"})

    def tol(**kw: Any) -> DeviceToleration:
        return DeviceToleration.model_validate(kw)

    assert toleration_tolerates(tol(key="k", value="v"), taint)
    assert toleration_tolerates(tol(operator="Exists"), taint)
    assert toleration_tolerates(tol(key="k", operator="Exists", effect="NoSchedule"), taint)
    assert not toleration_tolerates(tol(key="k", value="w"), taint)
    assert not toleration_tolerates(tol(key="k", operator="Exists", effect="NoExecute"), taint)
    assert not toleration_tolerates(tol(key="j", operator="Exists"), taint)
