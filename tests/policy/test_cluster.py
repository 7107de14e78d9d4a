"""Cluster descriptions: expansion, determinism, and located errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupolicy.policy.catalog import get_model, model_names
from gpupolicy.policy.cluster import gpu_uuid, load_cluster, render
from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.policy.gpu import Mode, Publish
from gpupolicy.policy.k8s.validation import validate_object
from gpupolicy.policy.policyfile import load_policy
from gpupolicy.policy.yamlsrc import SourceDoc

HEAD = """apiVersion: gpupolicy.dev/v1alpha1
kind: ClusterDescription
metadata: {name: lab}
spec:
  nodes:
"""

FLEET = (
    HEAD
    + """  - namePrefix: gpu-node
    count: 3
    gpus: {model: H100-80GB, count: 8}
    mig: dynamic
    cpuMillis: 96000
    memory: 1Ti
    labels: {pool: inference}
  - name: solo
    gpus:
      model: A100-40GB
      migInstances:
      - {profile: 3g.20gb, start: 0}
      - {profile: 3g.20gb, start: 4}
    mig: enabled
  - namePrefix: cpu
    count: 2
"""
)


def test_expansion() -> None:
    cluster = load_cluster(FLEET, "c.yaml")
    assert [n.name for n in cluster.nodes] == ["gpu-node-0", "gpu-node-1", "gpu-node-2", "solo", "cpu-0", "cpu-1"]
    node = cluster.nodes[0]
    assert node.labels == {"kubernetes.io/hostname": "gpu-node-0", "pool": "inference"}
    assert node.cpu_millis == 96000
    assert node.memory_bytes == 2**40
    assert len(node.gpus) == 8
    assert node.gpus[3].uuid == gpu_uuid("gpu-node-0", 3)
    assert len({g.uuid for n in cluster.nodes for g in n.gpus}) == 25
    assert cluster.nodes[4].gpus == ()


def test_slices_follow_the_mig_mode_without_a_policy() -> None:
    slices = load_cluster(FLEET, "c.yaml").slices()
    pools = {s.spec.pool.name for s in slices}
    assert pools == {"gpu-node-0", "gpu-node-1", "gpu-node-2", "solo", "cpu-0", "cpu-1"}
    node0 = [s for s in slices if s.spec.pool.name == "gpu-node-0"]
    assert len(node0) == 9  # one counters slice + one per GPU
    assert any(d.name == "gpu-3-mig-3g40gb-9-4" for s in node0 for d in s.devices)
    solo = [d.name for s in slices if s.spec.pool.name == "solo" for d in s.devices]
    assert solo == ["gpu-0-mig-3g20gb-9-0", "gpu-0-mig-3g20gb-9-4"]
    cpu = [s for s in slices if s.spec.pool.name == "cpu-0"]
    assert len(cpu) == 1 and cpu[0].devices == []
    for s in slices:
        owner = (s.metadata.owner_references or [])[0]
        assert owner.kind == "Node" and owner.name == s.spec.node_name


def test_a_policy_overrides_the_default() -> None:
    slices = load_cluster(FLEET, "c.yaml").slices(publish_for=lambda g, v: Publish(Mode.EXCLUSIVE))
    node0 = [d.name for s in slices if s.spec.pool.name == "gpu-node-0" for d in s.devices]
    assert node0 == [f"gpu-{i}" for i in range(8)]


def test_deterministic() -> None:
    a = [s.to_wire() for s in load_cluster(FLEET, "c.yaml").slices()]
    b = [s.to_wire() for s in load_cluster(FLEET, "c.yaml").slices()]
    assert a == b


CASES = [
    ("unknown model", "  - name: a\n    gpus: {model: Z9000}\n", "unknown_gpu_model", 7),
    ("both names", "  - name: a\n    namePrefix: b\n", "node_naming", 6),
    ("fixed name with count", "  - name: a\n    count: 2\n", "node_naming", 6),
    ("unknown field", "  - name: a\n    gpu: {model: T4}\n", "unknown_field", 7),
    ("bad mig mode", "  - name: a\n    mig: on\n", "invalid_value", 7),
    ("too many gpus", "  - name: a\n    gpus: {model: T4, count: 65}\n", "out_of_range", 7),
    ("bad memory", "  - name: a\n    memory: lots\n", "invalid_quantity", 7),
    (
        "instances without mig",
        "  - name: a\n    gpus: {model: A100-40GB, migInstances: [{profile: 1g.5gb, start: 0}]}\n",
        "mig_instances_need_mig",
        6,
    ),
    (
        "overlapping instances",
        "  - name: a\n    mig: enabled\n    gpus:\n      model: H100-80GB\n      migInstances:\n"
        "      - {profile: 3g.40gb, start: 0}\n      - {profile: 4g.40gb, start: 0}\n",
        "invalid_mig_placement",
        12,
    ),
    (
        "profile of another model",
        "  - name: a\n    mig: enabled\n    gpus:\n      model: H100-80GB\n      migInstances:\n"
        "      - {profile: 1g.5gb, start: 0}\n",
        "unknown_mig_profile",
        11,
    ),
    ("bad node name", "  - name: Node_A\n", "invalid_name", 6),
    ("duplicate nodes", "  - namePrefix: n\n    count: 2\n  - name: n-1\n", "duplicate_name", 8),
]


@pytest.mark.parametrize(("title", "body", "code", "line"), CASES, ids=[c[0] for c in CASES])
def test_errors(title: str, body: str, code: str, line: int) -> None:
    with pytest.raises(DiagnosticError) as info:
        load_cluster(HEAD + body, "bad.yaml")
    found = [(d.code, d.location.line) for d in info.value.diagnostics]
    assert (code, line) in found, found
    assert all(d.location.file == "bad.yaml" for d in info.value.diagnostics)


def test_wrong_kind() -> None:
    with pytest.raises(DiagnosticError) as info:
        load_cluster("apiVersion: v1\nkind: Node\nmetadata: {name: x}\n", "k.yaml")
    assert [d.code for d in info.value.diagnostics] == ["unexpected_kind"]


MODES = [
    "exclusive: {}",
    "timeSlicing: {interval: Short}",
    "timeSlicing: {replicas: 3}",
    "mps: {maxClients: 4, defaultPinnedDeviceMemoryLimit: 1Gi}",
    "shares: {count: 7}",
    "mig: {dynamic: true}",
    "mig: {dynamic: true, profiles: [1g.10gb, 3g.40gb, 1g.24gb, 2g.12gb]}",
    "mig: {layout: [3g.40gb, 3g.40gb]}",
    "mig: {layout: [1g.24gb, 1g.24gb-me]}",
    "mig: {}",
]


@settings(max_examples=60, deadline=None)
@given(
    models=st.lists(st.sampled_from(model_names()), min_size=1, max_size=3, unique=True),
    modes=st.lists(st.sampled_from(MODES), min_size=1, max_size=3),
    count=st.integers(min_value=1, max_value=9),
    mig=st.sampled_from(["disabled", "enabled", "dynamic"]),
)
def test_any_policy_on_any_fleet_renders_valid_slices(
    models: list[str], modes: list[str], count: int, mig: str
) -> None:
    rules = "".join(
        f'  - name: r{i}\n    selector: device.attributes["gpu.gpupolicy.dev"].productName == '
        f'"{get_model(models[i % len(models)]).product_name}"\n    {mode}\n'
        for i, mode in enumerate(modes)
    )
    header = "apiVersion: gpupolicy.dev/v1alpha1\nkind: GpuPolicy\nmetadata: {name: p}\nspec:\n  sharing:\n"
    policy = load_policy(header + rules, "p.yaml")
    groups = "".join(
        f"  - namePrefix: g{i}\n    count: 2\n    gpus: {{model: {m}, count: {count}}}\n    mig: {mig}\n"
        for i, m in enumerate(models)
    )
    cluster = load_cluster(HEAD + groups, "c.yaml")
    try:
        _, slices = render(policy, cluster)
    except DiagnosticError as err:
        assert {d.code for d in err.diagnostics} <= {"mig_layout_does_not_fit", "unknown_mig_profile"}
        assert all(d.location.file == "p.yaml" and d.location.line > 0 for d in err.diagnostics)
        return
    for s in slices:
        assert validate_object(s, SourceDoc(s.to_wire(), "rendered")) == [], s.name
    per_pool: dict[str, set[int]] = {}
    for s in slices:
        per_pool.setdefault(s.spec.pool.name, set()).add(s.spec.pool.resource_slice_count)
    counts = {pool: len([s for s in slices if s.spec.pool.name == pool]) for pool in per_pool}
    assert all(per_pool[p] == {counts[p]} for p in per_pool)
