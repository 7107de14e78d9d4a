"""A small whole-GPU cluster for the preemption tests: a policy with priority tiers (``prod`` 1000, ``batch`` 10,
``scavenge`` 1), nodes of H100s, bound pods holding allocated claims, and the checks run after every step."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from gpupolicy.plugin.controller.loop import Config, Controller
from gpupolicy.plugin.controller.placer import Settings
from gpupolicy.plugin.controller.preempt import Options
from gpupolicy.plugin.kube import Obj
from gpupolicy.policy.cluster import load_cluster
from gpupolicy.policy.k8s.dump import to_wire
from gpupolicy.policy.policyfile.compile import load_policy
from gpupolicy.solver.result import SolveParams
from tests.plugin.controller.fakeapi import FakeApi, node

GPU = "gpu.gpupolicy.dev"
POLICY = """\
apiVersion: gpupolicy.dev/v1alpha1
kind: GpuPolicy
metadata: {name: preempt}
spec:
  deviceClasses:
  - name: gpu.gpupolicy.dev
    selectors:
    - cel: {expression: 'device.attributes["gpu.gpupolicy.dev"].type == "gpu"'}
  sharing:
  - name: whole
    exclusive: {}
  priorityTiers:
  - {name: production, priority: 1000, namespaces: [prod]}
  - {name: batch, priority: 10, namespaces: [batch]}
  - {name: scavenge, priority: 1, namespaces: [scavenge]}
"""


def cluster(nodes: dict[str, int]) -> FakeApi:
    """Nodes (name -> H100 count) with their ResourceSlices and the policy's DeviceClass."""
    spec = "\n".join(f"  - {{name: {n}, gpus: {{model: H100-80GB, count: {c}}}}}" for n, c in nodes.items())
    head = "apiVersion: gpupolicy.dev/v1alpha1\nkind: ClusterDescription\nmetadata: {name: t}\n"
    text = f"{head}spec:\n  nodes:\n{spec}\n"
    policy = load_policy(POLICY, "policy.yaml")
    api = FakeApi()
    for obj in policy.device_classes:
        api.put("deviceclasses", to_wire(obj))
    for s in load_cluster(text, "cluster.yaml").slices(policy.publish_for, driver=policy.driver_name):
        api.put("resourceslices", to_wire(s))
    for name in nodes:
        api.put("nodes", node(name))
    return api


def controller(api: FakeApi, wall: list[float], **options: Any) -> Controller:
    settings = Settings(
        policy=(POLICY, "policy.yaml"), params=SolveParams(time_limit_s=5, workers=1, explain_total_s=5)
    )
    config = Config("test-replica", settings, batch_window_s=0, disrupt=Options(**options))
    ctl = Controller(api, config, wall=lambda: wall[0])
    if CACHED:  # passes read from the cache the watches keep, as in `controller run`
        assert ctl.inform(CACHED[0])
    return ctl


CACHED: list[threading.Event] = []
"""Set by the tests' ``cached`` fixture: controllers made while it holds a stop event read from a cache."""


@pytest.fixture(params=["listed", "cached"], autouse=True)
def cached(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each preemption test twice: passes that list the cluster, and passes read from the cache."""
    stop = threading.Event()
    if request.param == "cached":
        CACHED.append(stop)
    yield
    CACHED.clear()
    stop.set()


def gpu_claim(name: str, namespace: str, count: int = 1) -> Obj:
    request: dict[str, Any] = {"name": "gpu", "exactly": {"deviceClassName": GPU}}
    if count != 1:
        request["exactly"]["count"] = count
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"devices": {"requests": [request]}},
    }


def gated(api: FakeApi, name: str, namespace: str, count: int = 1) -> None:
    """A gated pod with one claim (``<name>-gpu``) asking for ``count`` GPUs."""
    api.put("resourceclaims", gpu_claim(f"{name}-gpu", namespace, count))
    api.put(
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "schedulingGates": [{"name": "gpupolicy.dev/placement"}],
                "resourceClaims": [{"name": "gpu", "resourceClaimName": f"{name}-gpu"}],
                "containers": [{"name": "c", "image": "none"}],
            },
        },
    )


def running(
    api: FakeApi, name: str, namespace: str, node_name: str, gpus: list[str], *, movable: bool = False, app: str = ""
) -> None:
    """A running pod (controlled by a ReplicaSet) bound to ``node_name``, whose claim ``<name>-gpu`` holds
    ``gpus`` and is reserved for it."""
    meta: Obj = {
        "name": name,
        "namespace": namespace,
        "labels": {"app": app or name},
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs", "controller": True}
        ],
    }
    if movable:
        meta["annotations"] = {"gpupolicy.dev/movable": "true"}
    stored = api.put(
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": {
                "nodeName": node_name,
                "resourceClaims": [{"name": "gpu", "resourceClaimName": f"{name}-gpu"}],
                "containers": [{"name": "c", "image": "none"}],
            },
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        },
    )
    claim = gpu_claim(f"{name}-gpu", namespace, len(gpus))
    results = [{"request": "gpu", "driver": GPU, "pool": node_name, "device": d} for d in gpus]
    selector = {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]
    }
    claim["status"] = {
        "allocation": {"devices": {"results": results}, "nodeSelector": selector},
        "reservedFor": [{"resource": "pods", "name": name, "uid": stored["metadata"]["uid"]}],
    }
    api.put("resourceclaims", claim)


def budget(api: FakeApi, name: str, namespace: str, app: str, allowed: int) -> None:
    api.put(
        "poddisruptionbudgets",
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": namespace, "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": app}}, "maxUnavailable": allowed},
            "status": {
                "observedGeneration": 1,
                "disruptionsAllowed": allowed,
                "currentHealthy": 1,
                "desiredHealthy": 1,
            },
        },
    )


def terminated(api: FakeApi, namespace: str, name: str) -> None:
    """The evicted pod's containers stopped (kubelet deletes it) and kube-controller-manager releases its claim."""
    api.delete("pods", namespace, name)
    claim = api.get("resourceclaims", namespace, f"{name}-gpu")
    claim["status"] = {}
    api.put("resourceclaims", claim)


def devices_of(api: FakeApi, namespace: str, name: str) -> list[str]:
    alloc = (api.get("resourceclaims", namespace, name).get("status") or {}).get("allocation")
    return sorted(r["device"] for r in alloc["devices"]["results"]) if alloc else []


def watch_every_write(api: FakeApi) -> list[str]:
    """After every write to the API (any kind), whether a device is in two claims: the violations seen."""
    seen: list[str] = []

    def check() -> None:
        try:
            no_device_twice(api)
        except AssertionError as exc:
            seen.append(str(exc))

    api.watchers.append(check)
    return seen


def no_device_twice(api: FakeApi) -> None:
    held = Counter(
        (r["pool"], r["device"])
        for c in api.of("resourceclaims")
        for r in (((c.get("status") or {}).get("allocation") or {}).get("devices") or {}).get("results") or []
    )
    assert not [d for d, n in held.items() if n > 1], f"devices in two claims: {held}"


def condition(api: FakeApi, namespace: str, name: str, kind: str) -> Obj | None:
    conditions = (api.get("pods", namespace, name).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), None)


def gates(api: FakeApi, namespace: str, name: str) -> list[str]:
    return [g["name"] for g in api.get("pods", namespace, name)["spec"].get("schedulingGates") or []]
