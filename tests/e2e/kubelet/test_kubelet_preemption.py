"""Preemption and defragmentation by ``gpupolicy controller run`` on real kubelet nodes (scheduler, controller
manager with the resource-claim, disruption and replica-set controllers, kubelets preparing dynamic MIG instances).

- two nodes with one H100 each are full of lower-priority pods (a 4g.40gb at slots 0-3 and a 3g.40gb at 4-7 on
  each); an urgent 4g pod arrives gated. The controller evicts exactly the cheapest victim (the batch-tier 4g pod),
  holds its slots, and places the urgent pod there once the kubelet has unprepared the victim's claim;
- the same with a PodDisruptionBudget that allows no disruption of the batch pod: the standard-tier 4g pod goes;
- defragmentation: a movable 1g pod (a ReplicaSet's, placed first-fit by the scheduler at slot 0) blocks the only
  free 4g slot; the controller moves it (evicts it; the ReplicaSet's replacement is placed on the other GPU) and a
  4g pod of the same tier fits.

A watcher samples the namespace's claims all along: no MIG memory slot is ever in two claims' allocations.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.controller.snapshot import GATE
from tests.e2e.controlplane import ControlPlane
from tests.e2e.kube import Kube, KubeError, Obj
from tests.e2e.kubelet.conftest import MakeNode, install_classes
from tests.e2e.kubelet.placement import (
    STRANDS_NVML,
    controller_process,
    inventory_file,
    mig_placement,
    pinned_pod,
    results,
)
from tests.e2e.kubelet.pods import wait_running
from tests.e2e.node import KubeletNode
from tests.e2e.verifyalloc import verify_scheduler

pytestmark = [pytest.mark.testbed, pytest.mark.kubelet]

POLICY = Path(__file__).resolve().parents[1] / "data" / "preemption-h100-policy.yaml"
CLASS = {"1g": "e2e-mig-1g.gpupolicy.dev", "3g": "e2e-mig-3g.gpupolicy.dev", "4g": "e2e-mig-4g.gpupolicy.dev"}
SLOTS = {"1g.10gb": 1, "3g.40gb": 4, "4g.40gb": 4}
WAIT_S = 120.0
PREEMPT = ("--preemption", "--preemption-timeout=120")
DEFRAG = ("--defragment", "--max-disruptions-per-hour=5")


def tier_template(namespace: str, name: str, size: str, tier: str) -> Obj:
    request = {"name": "gpu", "exactly": {"deviceClassName": CLASS[size]}}
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"metadata": {"labels": {"tier": tier}}, "spec": {"devices": {"requests": [request]}}},
    }


class SlotWatch:
    """Samples the namespace's claims every 0.2 s in a thread: any MIG memory slot of one GPU in two allocations is
    recorded (``clashes``)."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.clashes: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                claims = self.kube.list("resource.k8s.io/v1", "ResourceClaim", self.namespace)
            except KubeError:
                continue
            self.samples += 1
            owner: dict[tuple[str, int, int], str] = {}
            for claim in claims:
                for r in results(claim):
                    gpu, profile, start = mig_placement(r["device"])
                    for slot in range(start, start + SLOTS[profile]):
                        key = (r["pool"], gpu, slot)
                        name = claim["metadata"]["name"]
                        if key in owner and owner[key] != name:
                            self.clashes.append(f"{key}: {owner[key]} and {name}")
                        owner[key] = name

    def __enter__(self) -> SlotWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def node_of(kube: Kube, namespace: str, pod: str) -> str:
    return str(kube.get("v1", "Pod", pod, namespace)["spec"]["nodeName"])


def claim_of(kube: Kube, namespace: str, pod: str) -> Obj:
    current = kube.get("v1", "Pod", pod, namespace)
    name = (current.get("status") or {}).get("resourceClaimStatuses")[0]["resourceClaimName"]
    return kube.get("resource.k8s.io/v1", "ResourceClaim", name, namespace)


def devices_of(kube: Kube, namespace: str, pod: str) -> list[tuple[str, str]]:
    return [(r["pool"], r["device"]) for r in results(claim_of(kube, namespace, pod))]


def uid(kube: Kube, namespace: str, pod: str) -> str:
    return str(kube.get("v1", "Pod", pod, namespace)["metadata"]["uid"])


def pod_gone(kube: Kube, namespace: str, pod: str, old_uid: str) -> bool:
    try:
        return uid(kube, namespace, pod) != old_uid
    except KubeError as exc:
        return exc.status == 404


def events_for(kube: Kube, namespace: str, pod: str) -> list[Obj]:
    return [e for e in kube.list("v1", "Event", namespace) if (e.get("involvedObject") or {}).get("name") == pod]


@pytest.fixture
def two_h100(node_kube: Kube, make_node: MakeNode) -> Iterator[dict[str, KubeletNode]]:
    install_classes(node_kube, POLICY)
    nodes = [make_node(POLICY, STRANDS_NVML, prefix="pre") for _ in range(2)]
    yield {n.name: n for n in sorted(nodes, key=lambda n: n.name)}


def fill(kube: Kube, ns: str, names: list[str]) -> dict[str, str]:
    """On each node a 4g (batch on the first, standard on the second) and a batch 3g, placed by the controller
    (gated, pinned by node affinity); returns pod -> uid once all four run."""
    for name, size, tier in (
        ("batch-4g", "4g", "batch"),
        ("standard-4g", "4g", "standard"),
        ("batch-3g", "3g", "batch"),
    ):
        kube.create(tier_template(ns, name, size, tier))
    kube.create(tier_template(ns, "urgent-4g", "4g", "urgent"))
    layout = {"b4": ("batch-4g", names[0]), "b3a": ("batch-3g", names[0]), "s4": ("standard-4g", names[1]),
              "b3b": ("batch-3g", names[1])}  # fmt: skip
    for pod, (template, node) in layout.items():
        obj = pinned_pod(ns, pod, template, [node], gated=True)
        obj["metadata"]["labels"] = {"app": pod}
        kube.create(obj)
    return {pod: str(wait_running(kube, ns, pod, timeout_s=WAIT_S)["metadata"]["uid"]) for pod in layout}


def preempt_once(
    plane: ControlPlane, kube: Kube, ns: str, nodes: dict[str, KubeletNode], tmp_path: Path, victim: str
) -> None:
    names = sorted(nodes)
    with (
        SlotWatch(kube, ns) as watch,
        controller_process(
            plane, ns, tmp_path / "controller.log", identity="preempt-e2e", policy=POLICY, extra=PREEMPT
        ) as controller,
    ):
        try:
            uids = fill(kube, ns, names)
            kube.create(pinned_pod(ns, "urgent", "urgent-4g", names, gated=True))
            kube.wait_for("the victim evicted", lambda: pod_gone(kube, ns, victim, uids[victim]), timeout_s=WAIT_S)
            wait_running(kube, ns, "urgent", timeout_s=WAIT_S)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\ncontroller log:\n{controller.logs()[-6000:]}") from None
        metrics = controller.metrics()
        assert metrics("gpupolicy_controller_preemptions_total") == 1
    for pod, old in uids.items():
        if pod != victim:
            assert uid(kube, ns, pod) == old, f"{pod} was disturbed"
            assert kube.get("v1", "Pod", pod, ns)["status"]["phase"] == "Running"
    victim_node = {"b4": names[0], "s4": names[1]}[victim]
    assert node_of(kube, ns, "urgent") == victim_node
    assert [d for _, d in devices_of(kube, ns, "urgent")] == ["gpu-0-mig-4g40gb-5-0"]
    reasons = {e.get("reason") for e in events_for(kube, ns, victim)}
    assert "Preempted" in reasons, reasons
    assert watch.samples > 10 and watch.clashes == [], watch.clashes
    inventory = inventory_file(kube, kube.list("resource.k8s.io/v1", "DeviceClass"), list(nodes.values()),
                               tmp_path / "inventory.yaml")  # fmt: skip
    assert verify_scheduler(inventory, kube.list("resource.k8s.io/v1", "ResourceClaim", ns), POLICY) == []


def test_an_urgent_pod_evicts_exactly_the_cheapest_victim(
    node_plane: ControlPlane, node_kube: Kube, node_namespace: str, two_h100: dict[str, KubeletNode], tmp_path: Path
) -> None:
    preempt_once(node_plane, node_kube, node_namespace, two_h100, tmp_path, victim="b4")


def test_a_budget_that_forbids_the_cheapest_victim_picks_the_next(
    node_plane: ControlPlane, node_kube: Kube, node_namespace: str, two_h100: dict[str, KubeletNode], tmp_path: Path
) -> None:
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "keep-b4", "namespace": node_namespace},
        "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "b4"}}},
    }
    node_kube.create(pdb)
    preempt_once(node_plane, node_kube, node_namespace, two_h100, tmp_path, victim="s4")
    assert node_kube.get("v1", "Pod", "b4", node_namespace)["status"]["phase"] == "Running"


def replica_set(namespace: str, *, gated: bool) -> Obj:
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 1,
        "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "batch-1g"}],
        "containers": [{"name": "c", "image": "registry.invalid/none:0", "resources": {"claims": [{"name": "gpu"}]}}],
    }
    if gated:
        pod_spec["schedulingGates"] = [{"name": GATE}]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "mover", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "mover"}},
            "template": {
                "metadata": {"labels": {"app": "mover"}, "annotations": {"gpupolicy.dev/movable": "true"}},
                "spec": pod_spec,
            },
        },
    }


def mover_pods(kube: Kube, namespace: str) -> list[Obj]:
    pods = kube.list("v1", "Pod", namespace)
    return [p for p in pods if (p["metadata"].get("labels") or {}).get("app") == "mover"]


def running_replacement(kube: Kube, namespace: str, old_uid: str) -> Obj | None:
    for pod in mover_pods(kube, namespace):
        if pod["metadata"]["uid"] != old_uid and (pod.get("status") or {}).get("phase") == "Running":
            return pod
    return None


def test_defragmentation_moves_one_movable_1g_pod_to_make_a_4g_fit(
    node_plane: ControlPlane, node_kube: Kube, node_namespace: str, two_h100: dict[str, KubeletNode], tmp_path: Path
) -> None:
    kube, ns, names = node_kube, node_namespace, sorted(two_h100)
    kube.create(tier_template(ns, "batch-1g", "1g", "batch"))
    kube.create(tier_template(ns, "batch-3g", "3g", "batch"))
    kube.create(tier_template(ns, "batch-4g", "4g", "batch"))
    # The scheduler places the ReplicaSet's (ungated) 1g pod first-fit: memory slot 0 of some GPU.
    kube.create(replica_set(ns, gated=False))
    first = kube.wait_for("the mover's pod", lambda: (mover_pods(kube, ns) or [None])[0], timeout_s=WAIT_S)
    first = wait_running(kube, ns, first["metadata"]["name"], timeout_s=WAIT_S)
    home = first["spec"]["nodeName"]
    other = next(n for n in names if n != home)
    assert [mig_placement(d)[1:] for _, d in devices_of(kube, ns, first["metadata"]["name"])] == [("1g.10gb", 0)]
    # From now on its replacements are gated (placed by the controller, which honours its holds).
    rs = kube.get("apps/v1", "ReplicaSet", "mover", ns)
    rs["spec"]["template"]["spec"]["schedulingGates"] = [{"name": GATE}]
    kube.replace(rs)
    with (
        SlotWatch(kube, ns) as watch,
        controller_process(
            node_plane, ns, tmp_path / "controller.log", identity="defrag-e2e", policy=POLICY, extra=DEFRAG
        ) as controller,
    ):
        try:
            kube.create(pinned_pod(ns, "fixed-3g", "batch-3g", [home], gated=True))
            kube.create(pinned_pod(ns, "fixed-4g", "batch-4g", [other], gated=True))
            wait_running(kube, ns, "fixed-3g", timeout_s=WAIT_S)
            wait_running(kube, ns, "fixed-4g", timeout_s=WAIT_S)
            kube.create(pinned_pod(ns, "big", "batch-4g", names, gated=True))
            wait_running(kube, ns, "big", timeout_s=WAIT_S)
            old = first["metadata"]["uid"]
            replacement = kube.wait_for(
                "the mover's replacement Running", lambda: running_replacement(kube, ns, old), timeout_s=WAIT_S
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\ncontroller log:\n{controller.logs()[-6000:]}") from None
        assert controller.metrics()("gpupolicy_controller_victims_total", reason="moved") == 1
    assert node_of(kube, ns, "big") == home
    assert [d for _, d in devices_of(kube, ns, "big")] == ["gpu-0-mig-4g40gb-5-0"]
    assert replacement["spec"]["nodeName"] == other, "the 1g moved to the GPU with free slots 4-7"
    assert [mig_placement(d)[1] for _, d in devices_of(kube, ns, replacement["metadata"]["name"])] == ["1g.10gb"]
    assert len(mover_pods(kube, ns)) == 1 and pod_gone(kube, ns, first["metadata"]["name"], first["metadata"]["uid"])
    assert watch.samples > 10 and watch.clashes == [], watch.clashes
