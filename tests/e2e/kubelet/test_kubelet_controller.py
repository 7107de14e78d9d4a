"""The placement controller with real kubelets: two nodes, each one simulated H100 that the plugin publishes as
examples/first-fit-strands' dynamic MIG pool. Two 3g.40gb pods, then two 4g.40gb pods:

- the kube-scheduler alone (ungated pods) gives each 3g pod the first fitting device, memory slots 0-3 of some GPU,
  and at least one 4g pod (whose only device needs slots 0-3) stays Pending on these real nodes;
- gated, ``gpupolicy controller run`` solves all four at once (4g at slot 0 and 3g at slot 4 on each GPU), writes
  the allocations and removes the gates; the scheduler binds, the real kubelets prepare, and all four run. The CDI
  IDs each container was created with resolve, in the CDI specs the plugin wrote, to exactly the claim's allocated
  devices, i.e. to the MIG instances the plugin made where the allocation says; our verifier accepts every
  allocation;
- deleting the pods makes the kubelets unprepare: MIG instances destroyed, the claims' CDI specs removed;
- a replacement pod that arrives while a deleted one stops gets the freed slot from the controller only once the
  kubelet has unprepared it (never one device for two claims), and a MIG instance of its own; the neighbour's stays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gpupolicy.plugin.controller.snapshot import ALLOCATED_BY
from gpupolicy.plugin.kubelet.cdi import mig_cap_minor
from tests.e2e.controller.conftest import Replica
from tests.e2e.controlplane import ControlPlane
from tests.e2e.kube import Kube, Obj
from tests.e2e.kubelet.conftest import MakeNode
from tests.e2e.kubelet.nodecheck import mig_instances
from tests.e2e.kubelet.placement import (
    DRIVER,
    FOUR_G,
    STRANDS_NVML,
    STRANDS_POLICY,
    THREE_G,
    allocation_node,
    cdi_devices_of,
    cdi_spec_file,
    cdi_spec_files,
    controller_process,
    inventory_file,
    mig_placement,
    outcomes,
    pinned_pod,
    resolve_cdi,
    results,
    strands_classes,
)
from tests.e2e.kubelet.pods import claim_template, delete_and_wait_gone, pod_claim, wait_running
from tests.e2e.node import KubeletNode
from tests.e2e.verifyalloc import verify_scheduler

pytestmark = [pytest.mark.testbed, pytest.mark.kubelet]

THREES, FOURS = ["a-three-1", "a-three-2"], ["b-four-1", "b-four-2"]
IDENTITY = "kubelet-e2e"
WAIT_S = 90.0  # two shared cores: generous, but a stuck pod still fails the test


@dataclass
class Strands:
    nodes: dict[str, KubeletNode]
    inventory: Path


def claims_of(kube: Kube, namespace: str) -> list[Obj]:
    return kube.list("resource.k8s.io/v1", "ResourceClaim", namespace)


def delete_all(kube: Kube, namespace: str, pods: list[str], nodes: list[KubeletNode]) -> None:
    """Graceful deletes (the kubelet stops the pod and unprepares), then: no claim left, no MIG instance, no CDI
    spec on any node."""
    for pod in pods:
        delete_and_wait_gone(kube, namespace, pod, timeout_s=WAIT_S)
    kube.wait_for("the pods' claims deleted", lambda: not claims_of(kube, namespace), timeout_s=WAIT_S)
    for node in nodes:
        assert mig_instances(node) == [], f"{node.name}: MIG instances left after unprepare"
        assert cdi_spec_files(node) == [], f"{node.name}: CDI specs left after unprepare"


def check_on_node(kube: Kube, namespace: str, pod: str, nodes: dict[str, KubeletNode]) -> tuple[Obj, KubeletNode]:
    """The pod runs where its claim's allocation says, and the runtime got exactly the allocation's CDI IDs, which
    resolve in the plugin's CDI specs to this claim and to the MIG instance at the allocated place."""
    current = wait_running(kube, namespace, pod, timeout_s=WAIT_S)
    claim = pod_claim(kube, namespace, current)
    node = nodes[current["spec"]["nodeName"]]
    assert allocation_node(claim) == node.name
    uid = claim["metadata"]["uid"]
    allocated = [r for r in results(claim) if r["driver"] == DRIVER]
    assert allocated and all(r["pool"] == node.name for r in allocated)
    want = sorted(f"k8s.{DRIVER}/claim={uid}-{r['device']}" for r in allocated)
    assert [sorted(ids) for ids in cdi_devices_of(node, current)] == [want], "one CreateContainer, these IDs"
    assert cdi_spec_file(node, uid).is_file()
    instances = {i.uuid: i for i in mig_instances(node)}
    for cdi_id, result in zip(want, sorted(allocated, key=lambda r: r["device"]), strict=True):
        owner, device = resolve_cdi(node, cdi_id)
        assert owner == uid, f"{cdi_id} is in another claim's spec"
        env = dict(e.split("=", 1) for e in device["containerEdits"]["env"])
        instance = instances[env["NVIDIA_VISIBLE_DEVICES"]]
        assert (instance.gpu, instance.profile, instance.start) == mig_placement(result["device"])
        caps = {f"/dev/nvidia-caps/nvidia-cap{mig_cap_minor(instance.gpu, instance.gi, *ci)}" for ci in ((), (0,))}
        assert caps <= {n["path"] for n in device["containerEdits"]["deviceNodes"]}, "that instance's capabilities"
    return claim, node


def create_gated(kube: Kube, namespace: str, nodes: list[str]) -> None:
    """The four pods, gated, and their claims made: a controller started now sees all four in its first batch."""
    for pod in THREES:
        kube.create(pinned_pod(namespace, pod, "three", nodes, gated=True))
    for pod in FOURS:
        kube.create(pinned_pod(namespace, pod, "four", nodes, gated=True))
    kube.wait_for("claims from the templates", lambda: len(claims_of(kube, namespace)) == 4, timeout_s=WAIT_S)


def placed_by_controller(
    kube: Kube, namespace: str, pods: list[str], nodes: dict[str, KubeletNode], controller: Replica
) -> dict[str, tuple[Obj, KubeletNode]]:
    """Every pod Running where the controller's allocation says (``check_on_node``), gate gone, claim ours."""
    try:
        placed = {pod: check_on_node(kube, namespace, pod, nodes) for pod in pods}
    except AssertionError as exc:
        raise AssertionError(f"{exc}\ncontroller log:\n{controller.logs()[-4000:]}") from None
    for pod, (claim, _) in placed.items():
        assert not kube.get("v1", "Pod", pod, namespace)["spec"].get("schedulingGates")
        assert claim["metadata"]["annotations"][ALLOCATED_BY] == IDENTITY
    return placed


def devices_by_node(placed: dict[str, tuple[Obj, KubeletNode]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for claim, node in placed.values():
        out.setdefault(node.name, set()).update(r["device"] for r in results(claim))
    return out


def migs(node: KubeletNode) -> list[tuple[str, int]]:
    return [(i.profile, i.start) for i in mig_instances(node)]


@pytest.fixture
def strands_nodes(node_kube: Kube, make_node: MakeNode, node_namespace: str, tmp_path: Path) -> Strands:
    """Two real nodes with examples/first-fit-strands' GPU each, its classes, the templates, the inventory."""
    classes = strands_classes(node_kube)
    nodes = {n.name: n for n in (make_node(STRANDS_POLICY, STRANDS_NVML, prefix="ffs") for _ in range(2))}
    node_kube.create(claim_template(node_namespace, "three", THREE_G))
    node_kube.create(claim_template(node_namespace, "four", FOUR_G))
    return Strands(nodes, inventory_file(node_kube, classes, list(nodes.values()), tmp_path / "inventory.yaml"))


def test_controller_places_what_the_scheduler_strands_on_real_kubelets(
    node_plane: ControlPlane, node_kube: Kube, node_namespace: str, strands_nodes: Strands, tmp_path: Path
) -> None:
    kube, ns, nodes = node_kube, node_namespace, strands_nodes.nodes
    names = sorted(nodes)

    # The scheduler alone, in the example's arrival order: each 3g pod runs before the next pod arrives.
    for pod in THREES:
        kube.create(pinned_pod(ns, pod, "three", names, gated=False))
        wait_running(kube, ns, pod, timeout_s=WAIT_S)
    for pod in FOURS:
        kube.create(pinned_pod(ns, pod, "four", names, gated=False))
    decided = kube.wait_for("the scheduler to decide the 4g pods", lambda: outcomes(kube, ns, FOURS), WAIT_S)
    print(f"\nscheduler alone: {decided}")
    assert "unschedulable" in decided.values(), "first-fit strands at least one 4g pod"
    for pod in FOURS:
        if decided[pod] == "unschedulable":
            current = kube.get("v1", "Pod", pod, ns)
            assert current["status"]["phase"] == "Pending" and not current["spec"].get("nodeName")
            assert not results(pod_claim(kube, ns, current)), "a stranded pod's claim stays unallocated"
    starts: dict[str, list[int]] = {name: [] for name in names}
    for pod in THREES + [p for p in FOURS if decided[p] == "running"]:
        claim, node = check_on_node(kube, ns, pod, nodes)
        if pod in THREES:
            starts[node.name].append(mig_placement(results(claim)[0]["device"])[2])
    assert all(s in ([], [0], [0, 4]) for s in starts.values()), f"first-fit: 3g at slots 0-3 first: {starts}"
    assert verify_scheduler(strands_nodes.inventory, claims_of(kube, ns), STRANDS_POLICY) == []
    delete_all(kube, ns, THREES + FOURS, list(nodes.values()))

    # The same pods gated, on the same nodes: the controller sees all four in one batch (it starts once their
    # claims exist), places a 4g at slot 0 and a 3g at slot 4 on each GPU, and all four run.
    create_gated(kube, ns, names)
    started = time.monotonic()
    with controller_process(node_plane, ns, tmp_path / "controller.log", identity=IDENTITY) as controller:
        placed = placed_by_controller(kube, ns, THREES + FOURS, nodes, controller)
        print(f"controller: all four Running {time.monotonic() - started:.1f} s after it started")
        assert controller.metrics()("gpupolicy_controller_placed_claims_total") == 4
    solved = {"gpu-0-mig-4g40gb-5-0", "gpu-0-mig-3g40gb-9-4"}
    assert devices_by_node(placed) == {name: solved for name in names}, "4g at slot 0, 3g at slot 4, on each GPU"
    for node in nodes.values():
        assert sorted(migs(node)) == [("3g.40gb", 4), ("4g.40gb", 0)], node.name
    assert verify_scheduler(strands_nodes.inventory, claims_of(kube, ns), STRANDS_POLICY) == []
    delete_all(kube, ns, THREES + FOURS, list(nodes.values()))


def running_with_no_device_twice(kube: Kube, namespace: str, pod: str) -> bool:
    """Whether ``pod`` runs; fails at once if two of the namespace's claims hold the same device meanwhile."""
    held = [(r["pool"], r["device"]) for c in claims_of(kube, namespace) for r in results(c)]
    assert len(held) == len(set(held)), f"a device allocated to two claims at once: {sorted(held)}"
    return bool(kube.get("v1", "Pod", pod, namespace).get("status", {}).get("phase") == "Running")


def test_a_replacement_gets_the_freed_slot_once_the_node_has_unprepared_it(
    node_plane: ControlPlane, node_kube: Kube, node_namespace: str, strands_nodes: Strands, tmp_path: Path
) -> None:
    """A 4g pod is deleted and, while it stops, a replacement 4g pod arrives gated (as in a rollout). The kubelet
    unprepares the old claim before the pod turns terminal, which frees the claim: the controller then places the
    replacement into the same slot, never holding one device for two claims, and the plugin makes a new MIG
    instance for it. The neighbouring 3g pod's instance and CDI spec are untouched throughout."""
    kube, ns, nodes = node_kube, node_namespace, strands_nodes.nodes
    names = sorted(nodes)
    create_gated(kube, ns, names)
    with controller_process(node_plane, ns, tmp_path / "controller.log", identity=IDENTITY) as controller:
        placed = placed_by_controller(kube, ns, THREES + FOURS, nodes, controller)
        old_claim, freed = placed[FOURS[0]]
        neighbour = next(c for p, (c, n) in placed.items() if n is freed and p != FOURS[0])
        before = {(i.profile, i.start): i.uuid for i in mig_instances(freed)}

        kube.delete("v1", "Pod", FOURS[0], ns, graceful=True)
        kube.create(pinned_pod(ns, "c-four-3", "four", names, gated=True))
        kube.wait_for(
            "the replacement Running", lambda: running_with_no_device_twice(kube, ns, "c-four-3"), timeout_s=WAIT_S
        )
        claim, node = placed_by_controller(kube, ns, ["c-four-3"], nodes, controller)["c-four-3"]
        assert node is freed and [r["device"] for r in results(claim)] == ["gpu-0-mig-4g40gb-5-0"]
        after = {(i.profile, i.start): i.uuid for i in mig_instances(freed)}
        assert after.keys() == before.keys() == {("3g.40gb", 4), ("4g.40gb", 0)}
        assert after[("3g.40gb", 4)] == before[("3g.40gb", 4)], "the neighbour's MIG instance stays"
        assert after[("4g.40gb", 0)] != before[("4g.40gb", 0)], "the old claim's instance went, a new one came"
        assert not cdi_spec_file(freed, old_claim["metadata"]["uid"]).exists()
        assert cdi_spec_file(freed, neighbour["metadata"]["uid"]).is_file()
    delete_and_wait_gone(kube, ns, FOURS[0], timeout_s=WAIT_S)
    assert verify_scheduler(strands_nodes.inventory, claims_of(kube, ns), STRANDS_POLICY) == []
    delete_all(kube, ns, [*THREES, FOURS[1], "c-four-3"], list(nodes.values()))
