"""ResourceSlices built from GPUs: names, limits, counters and MIG geometry."""

from __future__ import annotations

from collections import Counter as Tally
from functools import cache
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupolicy.policy.builder import NodeRef, build_slices, device_view, gpu_view
from gpupolicy.policy.builder_devices import lenient_version
from gpupolicy.policy.catalog import MigPlacement, Placement, all_models, fits, get_model, layout_problems
from gpupolicy.policy.gpu import GpuInfo, GpuTaint, MigInstance, Mode, Publish
from gpupolicy.policy.k8s import limits
from gpupolicy.policy.k8s.slice import Device, ResourceSlice
from gpupolicy.policy.k8s.validation import validate_object
from gpupolicy.policy.quantity import Quantity
from gpupolicy.policy.yamlsrc import SourceDoc

DRIVER = "gpu.gpupolicy.dev"
DYNAMIC = Publish(Mode.MIG, mig_dynamic=True)


def _gpus(model: str, count: int, **kwargs: object) -> list[GpuInfo]:
    kwargs.setdefault("mig_enabled", True)  # MIG devices are published only where MIG mode is on
    return [
        GpuInfo(model, minor, f"GPU-{minor:08d}", f"0000:{minor + 0x10:02x}:00.0", **kwargs)  # type: ignore[arg-type]
        for minor in range(count)
    ]


def _devices(slices: list[ResourceSlice]) -> dict[str, Device]:
    return {d.name: d for s in slices for d in s.devices}


def _counter_sets(slices: list[ResourceSlice]) -> dict[str, dict[str, Quantity]]:
    out = {}
    for s in slices:
        for cs in s.spec.shared_counters or ():
            out[cs.name] = {k: v.value for k, v in (cs.counters or {}).items()}
    return out


def test_exclusive_full_gpus() -> None:
    slices = build_slices(NodeRef("node-a", "uid-a"), _gpus("A100-80GB", 4))
    assert len(slices) == 1
    s = slices[0]
    assert s.name == "node-a-gpu-gpupolicy-dev-0"
    assert s.spec.node_name == "node-a"
    assert s.spec.pool.name == "node-a"
    assert s.spec.pool.resource_slice_count == 1
    owner = (s.metadata.owner_references or [])[0]
    assert (owner.kind, owner.name, owner.uid) == ("Node", "node-a", "uid-a")
    assert [d.name for d in s.devices] == ["gpu-0", "gpu-1", "gpu-2", "gpu-3"]
    gpu0 = s.devices[0]
    attrs = {k: v.value for k, v in (gpu0.attributes or {}).items()}
    assert attrs["type"] == "gpu"
    assert attrs["productName"] == "NVIDIA A100-SXM4-80GB"
    assert attrs["resource.kubernetes.io/pciBusID"] == "0000:10:00.0"
    assert str(attrs["cudaComputeCapability"]) == "8.0.0"
    cap = gpu0.capacity or {}
    assert cap["memory"].value == Quantity("80Gi")
    assert cap["multiprocessors"].value == Quantity(108)


def test_generation_is_passed_through() -> None:
    slices = build_slices("n", _gpus("T4", 2), generation=7)
    assert {s.spec.pool.generation for s in slices} == {7}


def test_empty_node_gets_one_empty_slice() -> None:
    slices = build_slices("n", [])
    assert len(slices) == 1
    assert slices[0].devices == []
    assert slices[0].spec.pool.resource_slice_count == 1


def test_devices_split_at_128() -> None:
    gpus = _gpus("T4", 300)
    slices = build_slices("big", gpus)
    assert [len(s.devices) for s in slices] == [128, 128, 44]
    assert {s.spec.pool.resource_slice_count for s in slices} == {3}
    assert len({s.name for s in slices}) == 3


def test_tainted_devices_split_at_64() -> None:
    gpus = _gpus("T4", 100, taints=(GpuTaint("gpu.gpupolicy.dev/xid", "79", "NoSchedule"),))
    slices = build_slices("n", gpus)
    assert [len(s.devices) for s in slices] == [64, 36]
    assert all(d.taints for s in slices for d in s.devices)


def test_dynamic_mig_layout() -> None:
    slices = build_slices("n", _gpus("H100-80GB", 8), publish_for=lambda g, v: DYNAMIC)
    counters_only = [s for s in slices if s.spec.shared_counters]
    device_slices = [s for s in slices if s.spec.devices]
    # 1.35+: counters in their own slice, never mixed with devices.
    assert all(not s.spec.devices for s in counters_only)
    assert len(counters_only) == 1 and len(counters_only[0].spec.shared_counters or []) == 8
    assert len(device_slices) == 8
    assert {s.spec.pool.resource_slice_count for s in slices} == {9}
    for s in device_slices:
        assert len(s.devices) <= limits.SLICE_MAX_DEVICES_ADVANCED
        minors = {d.name.split("-")[1] for d in s.devices}
        assert len(minors) == 1  # one GPU per device slice


def test_mig_rule_on_a_gpu_with_mig_mode_off_publishes_the_whole_gpu() -> None:
    # The driver never switches MIG mode; MIG devices on a MIG-off GPU could never be prepared.
    gpus = _gpus("H100-80GB", 2, mig_enabled=False)
    slices = build_slices("n", gpus, publish_for=lambda g, v: DYNAMIC)
    assert not any(s.spec.shared_counters for s in slices)
    assert sorted(_devices(slices)) == ["gpu-0", "gpu-1"]


def test_counter_sets_respect_api_limits() -> None:
    slices = build_slices("n", _gpus("RTX-PRO-6000", 20), publish_for=lambda g, v: DYNAMIC)
    for s in slices:
        sets = s.spec.shared_counters or []
        assert len(sets) <= limits.SLICE_MAX_COUNTER_SETS
        for cs in sets:
            assert len(cs.counters or {}) <= limits.SLICE_MAX_COUNTERS_PER_SET
        for d in s.devices:
            assert len(d.attributes or {}) + len(d.capacity or {}) <= limits.DEVICE_MAX_ATTRIBUTES_AND_CAPACITIES
            assert len(d.consumes_counters or []) <= limits.DEVICE_MAX_COUNTER_CONSUMPTIONS
    assert len([s for s in slices if s.spec.shared_counters]) == 3  # 8 + 8 + 4


def test_dynamic_mig_device_names_and_counters() -> None:
    slices = build_slices("n", _gpus("H100-80GB", 1), publish_for=lambda g, v: DYNAMIC)
    devices = _devices(slices)
    spec = get_model("H100-80GB")
    want = {"gpu-0"} | {
        f"gpu-0-mig-{p.name_part}-{p.gi_profile_id}-{pl.start}" for p in spec.mig_profiles for pl in p.placements
    }
    assert set(devices) == want
    assert "gpu-0-mig-3g40gb-9-4" in devices
    assert "gpu-0-mig-1g10gb-me-20-6" in devices
    sets = _counter_sets(slices)
    assert set(sets) == {"gpu-0-counter-set"}
    totals = sets["gpu-0-counter-set"]
    assert totals["multiprocessors"] == Quantity(132)
    assert all(totals[f"memory-slice-{i}"] == Quantity(1) for i in range(8))
    # The full GPU consumes every counter.
    full = devices["gpu-0"].counters_consumed()["gpu-0-counter-set"]
    assert full == totals
    mig = devices["gpu-0-mig-3g40gb-9-4"].counters_consumed()["gpu-0-counter-set"]
    assert sorted(k for k in mig if k.startswith("memory-slice")) == [f"memory-slice-{i}" for i in range(4, 8)]
    assert mig["memory"] == Quantity(40448 * 1024 * 1024)


def _fits_counters(totals: dict[str, Quantity], chosen: list[Device]) -> bool:
    used: dict[str, Quantity] = {}
    for d in chosen:
        for name, amount in d.counters_consumed()["gpu-0-counter-set"].items():
            used[name] = used.get(name, Quantity(0)) + amount
    return all(used[k] <= totals[k] for k in used)


@pytest.mark.parametrize("model", ["A100-40GB", "H100-80GB", "A30", "RTX-PRO-6000"])
def test_counters_enforce_memory_geometry(model: str) -> None:
    """Two MIG devices pass the counter check only if their memory slots do not overlap."""
    slices = build_slices("n", _gpus(model, 1), publish_for=lambda g, v: DYNAMIC)
    totals = _counter_sets(slices)["gpu-0-counter-set"]
    spec = get_model(model)
    migs = [d for d in _devices(slices).values() if d.name != "gpu-0"]
    by_name = {
        f"gpu-0-mig-{p.name_part}-{p.gi_profile_id}-{pl.start}": MigPlacement(p, pl)
        for p in spec.mig_profiles
        for pl in p.placements
    }
    for a, b in combinations(migs, 2):
        pa, pb = by_name[a.name], by_name[b.name]
        overlap = bool(set(pa.placement.slots) & set(pb.placement.slots))
        if overlap:
            assert not _fits_counters(totals, [a, b]), (a.name, b.name)
        if _fits_counters(totals, [a, b]):
            assert not overlap


def test_counters_reject_first_fit_stranding() -> None:
    slices = build_slices("n", _gpus("H100-80GB", 1), publish_for=lambda g, v: DYNAMIC)
    devices = _devices(slices)
    totals = _counter_sets(slices)["gpu-0-counter-set"]
    three_at_0, four_at_0 = devices["gpu-0-mig-3g40gb-9-0"], devices["gpu-0-mig-4g40gb-5-0"]
    three_at_4 = devices["gpu-0-mig-3g40gb-9-4"]
    assert not _fits_counters(totals, [three_at_0, four_at_0])
    assert _fits_counters(totals, [four_at_0, three_at_4])
    assert not _fits_counters(totals, [devices["gpu-0"], devices["gpu-0-mig-1g10gb-19-3"]])


def test_dynamic_mig_allowed_profiles_only() -> None:
    publish = Publish(Mode.MIG, mig_dynamic=True, mig_profiles=("3g.40gb",))
    devices = _devices(build_slices("n", _gpus("H100-80GB", 1), publish_for=lambda g, v: publish))
    assert sorted(devices) == ["gpu-0", "gpu-0-mig-3g40gb-9-0", "gpu-0-mig-3g40gb-9-4"]


def test_mig_rule_on_non_mig_gpu_publishes_the_full_gpu() -> None:
    devices = _devices(build_slices("n", _gpus("L4", 1), publish_for=lambda g, v: DYNAMIC))
    assert list(devices) == ["gpu-0"]
    assert devices["gpu-0"].consumes_counters is None


def test_static_mig_from_existing_instances() -> None:
    instances = (MigInstance("3g.40gb", 4, uuid="MIG-aaa"), MigInstance("2g.20gb", 0, uuid="MIG-bbb"))
    gpu = GpuInfo("H100-80GB", 1, "GPU-1", "0000:01:00.0", mig_enabled=True, mig_instances=instances)
    devices = _devices(build_slices("n", [gpu]))
    assert sorted(devices) == ["gpu-1-mig-2g20gb-14-0", "gpu-1-mig-3g40gb-9-4"]
    d = devices["gpu-1-mig-3g40gb-9-4"]
    attrs = {k: v.value for k, v in (d.attributes or {}).items()}
    assert attrs["type"] == "mig"
    assert attrs["uuid"] == "MIG-aaa"
    assert attrs["parentUUID"] == "GPU-1"
    assert attrs["profile"] == "3g.40gb"
    assert (d.capacity or {})["memory"].value == Quantity(40448 * 2**20)


def test_static_mig_layout_placed_in_order() -> None:
    publish = Publish(Mode.MIG, mig_layout=("4g.40gb", "2g.20gb", "1g.10gb"))
    devices = _devices(build_slices("n", _gpus("H100-80GB", 1), publish_for=lambda g, v: publish))
    assert sorted(devices) == ["gpu-0-mig-1g10gb-19-6", "gpu-0-mig-2g20gb-14-4", "gpu-0-mig-4g40gb-5-0"]


def test_static_mig_layout_with_another_models_profile() -> None:
    publish = Publish(Mode.MIG, mig_layout=("3g.20gb",))
    with pytest.raises(ValueError, match="unknown_mig_profile: H100-80GB has no MIG profile"):
        build_slices("n", _gpus("H100-80GB", 1), publish_for=lambda g, v: publish)


def test_static_mig_layout_that_does_not_fit() -> None:
    publish = Publish(Mode.MIG, mig_layout=("4g.40gb", "4g.40gb"))
    with pytest.raises(ValueError, match="mig_layout_does_not_fit"):
        build_slices("n", _gpus("H100-80GB", 1), publish_for=lambda g, v: publish)


def test_shared_gpu_device() -> None:
    publish = Publish(Mode.MPS, shares=4, memory_default_bytes=10 * 2**30)
    devices = _devices(build_slices("n", _gpus("L40S", 1), publish_for=lambda g, v: publish))
    d = devices["gpu-0"]
    assert d.allow_multiple_allocations is True
    cap = d.capacity or {}
    assert cap["shares"].value == Quantity(4)
    policy = cap["shares"].request_policy
    assert policy is not None and policy.default == Quantity(1)
    mem = cap["memory"]
    assert mem.request_policy is not None and mem.request_policy.valid_range is not None
    assert mem.request_policy.default == Quantity("10Gi")
    assert mem.request_policy.valid_range.step == Quantity("1Mi")
    assert mem.value.as_integer() % 2**20 == 0
    # Every capacity of a shared device has a request policy, else one claim would consume it all.
    assert all(c.request_policy is not None for c in cap.values())


@pytest.mark.parametrize("mode", [Mode.SHARES, Mode.MPS, Mode.TIME_SLICING])
@pytest.mark.parametrize("shares", [1, 2, 1000])
def test_shared_gpu_slices_pass_the_api_server_rules(mode: Mode, shares: int) -> None:
    """One share too: a step of 1 from min 1 would exceed a capacity of 1, which the API server refuses."""
    publish = Publish(mode, shares=shares, memory_default_bytes=10 * 2**30)
    slices = build_slices("n", _gpus("H100-80GB", 2, mig_enabled=False), publish_for=lambda g, v: publish)
    for s in slices:
        assert validate_object(s, SourceDoc(s.to_wire(), "rendered")) == [], s.name
    shares_cap = (_devices(slices)["gpu-0"].capacity or {})["shares"]
    assert shares_cap.value == Quantity(shares)
    assert shares_cap.request_policy is not None and shares_cap.request_policy.default == Quantity(1)


def test_time_slicing_without_replicas_is_one_plain_device() -> None:
    devices = _devices(build_slices("n", _gpus("T4", 1), publish_for=lambda g, v: Publish(Mode.TIME_SLICING)))
    assert devices["gpu-0"].allow_multiple_allocations is None


def test_publish_for_sees_the_gpu() -> None:
    seen = []

    def choose(gpu: GpuInfo, view: object) -> Publish:
        seen.append(view)
        return DYNAMIC if gpu.minor == 0 else Publish()

    slices = build_slices("n", _gpus("H100-80GB", 2), publish_for=choose)
    assert len(seen) == 2
    devices = _devices(slices)
    assert "gpu-0-mig-7g80gb-0-0" in devices
    assert not any(name.startswith("gpu-1-mig") for name in devices)


def test_deterministic() -> None:
    gpus = _gpus("H100-80GB", 4)
    a = [s.to_wire() for s in build_slices("n", gpus, publish_for=lambda g, v: DYNAMIC)]
    b = [s.to_wire() for s in build_slices("n", list(reversed(gpus)), publish_for=lambda g, v: DYNAMIC)]
    assert a == b


def test_device_names_unique_in_pool() -> None:
    slices = build_slices("n", _gpus("RTX-PRO-6000", 4), publish_for=lambda g, v: DYNAMIC)
    names = Tally(d.name for s in slices for d in s.devices)
    assert max(names.values()) == 1


def test_views() -> None:
    gpu = _gpus("H100-80GB", 1)[0]
    view = gpu_view(gpu, DRIVER)
    assert view.attributes[DRIVER]["type"] == "gpu"
    assert view.attributes["resource.kubernetes.io"]["pciBusID"] == "0000:10:00.0"
    slices = build_slices("n", [gpu], publish_for=lambda g, v: DYNAMIC)
    mig = next(d for d in slices[1].devices if d.name == "gpu-0-mig-1g20gb-15-2")
    mv = device_view(DRIVER, mig.to_wire())
    assert mv.capacity[DRIVER]["memory"] == Quantity(20096 * 2**20)
    assert mv.attributes[DRIVER]["profile"] == "1g.20gb"


@pytest.mark.parametrize(
    ("text", "want"), [("570.124.06", "570.124.6"), ("12.8", "12.8.0"), ("535.54.03", "535.54.3"), ("1.2.3", "1.2.3")]
)
def test_lenient_version(text: str, want: str) -> None:
    assert lenient_version(text) == want


def test_placement_rules_agree_with_counters_on_triples() -> None:
    """Counter feasibility equals MIG geometry for three-device layouts on an A100 (memory-only rules)."""
    slices = build_slices("n", _gpus("A100-40GB", 1), publish_for=lambda g, v: DYNAMIC)
    totals = _counter_sets(slices)["gpu-0-counter-set"]
    spec = get_model("A100-40GB")
    migs = {d.name: d for d in _devices(slices).values() if d.name != "gpu-0"}
    placements = {
        f"gpu-0-mig-{p.name_part}-{p.gi_profile_id}-{pl.start}": MigPlacement(p, Placement(pl.start, pl.size))
        for p in spec.mig_profiles
        for pl in p.placements
    }
    names = sorted(migs)
    for trio in combinations(names, 3):
        geometric = fits([placements[trio[0]]], placements[trio[1]]) and fits(
            [placements[trio[0]], placements[trio[1]]], placements[trio[2]]
        )
        if geometric:
            assert _fits_counters(totals, [migs[n] for n in trio]), trio


def test_static_mig_with_pcie_root_stays_within_attribute_limit() -> None:
    instances = (MigInstance("4g.96gb", 0, uuid="MIG-x"),)
    gpu = GpuInfo(
        "RTX-PRO-6000", 0, "GPU-0", "0000:01:00.0", mig_enabled=True, mig_instances=instances, pcie_root="pci0000:00"
    )
    (d,) = build_slices("n", [gpu])[0].devices
    assert len(d.attributes or {}) + len(d.capacity or {}) <= limits.DEVICE_MAX_ATTRIBUTES_AND_CAPACITIES


@pytest.mark.parametrize(
    ("publish", "want"),
    [
        (Publish(), "exclusive"),
        (Publish(Mode.TIME_SLICING, shares=4), "timeSlicing"),
        (Publish(Mode.MPS, shares=4), "mps"),
        (Publish(Mode.SHARES, shares=10), "shares"),
        (DYNAMIC, "exclusive"),
    ],
)
def test_sharing_attribute(publish: Publish, want: str) -> None:
    devices = _devices(build_slices("n", _gpus("H100-80GB", 1), publish_for=lambda g, v: publish))
    attrs = devices["gpu-0"].attributes or {}
    assert attrs["sharing"].value == want
    assert all((d.attributes or {})["sharing"].value == "mig" for name, d in devices.items() if name != "gpu-0")


def test_static_layout_backtracks() -> None:
    # Greedy would put 3g.20gb at 0:4 and strand the last 1g.5gb (no start at slot 7).
    publish = Publish(Mode.MIG, mig_layout=("3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"))
    devices = _devices(build_slices("n", _gpus("A100-40GB", 1), publish_for=lambda g, v: publish))
    assert sorted(devices) == [
        "gpu-0-mig-1g5gb-19-2",
        "gpu-0-mig-1g5gb-19-3",
        "gpu-0-mig-2g10gb-14-0",
        "gpu-0-mig-3g20gb-9-4",
    ]


_MIG_MODELS = [m.name for m in all_models() if m.mig_capable]


@cache
def _dynamic_pool(model: str) -> tuple[dict[str, Quantity], tuple[tuple[Device, MigPlacement], ...]]:
    slices = build_slices("n", _gpus(model, 1), publish_for=lambda g, v: DYNAMIC)
    totals = _counter_sets(slices)["gpu-0-counter-set"]
    spec = get_model(model)
    by_name = {
        f"gpu-0-mig-{p.name_part}-{p.gi_profile_id}-{pl.start}": MigPlacement(p, pl)
        for p in spec.mig_profiles
        for pl in p.placements
    }
    devices = tuple((d, by_name[d.name]) for d in _devices(slices).values() if d.name != "gpu-0")
    return totals, devices


@settings(max_examples=300, deadline=None)
@given(data=st.data(), model=st.sampled_from(_MIG_MODELS))
def test_counters_agree_with_mig_rules(data: st.DataObject, model: str) -> None:
    """For any set of MIG devices of one GPU: the scheduler's counter check passes exactly when the
    catalog's placement rules accept the layout."""
    totals, pool = _dynamic_pool(model)
    chosen = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=8, unique_by=lambda x: x[0].name))
    counters_ok = _fits_counters(totals, [d for d, _ in chosen])
    rules_ok = layout_problems([p for _, p in chosen]) == []
    assert counters_ok == rules_ok, ([d.name for d, _ in chosen], layout_problems([p for _, p in chosen]))
