"""An in-memory API server for the controller's unit tests: resourceVersions, conflicts, the status subresource,
and hooks to act as a concurrent writer (the scheduler, another replica) at chosen moments."""

from __future__ import annotations

import builtins
import copy
import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpupolicy.plugin.kube import RESOURCES, Obj
from gpupolicy.plugin.kube.errors import error
from gpupolicy.policy.cluster import load_cluster
from gpupolicy.policy.k8s.dump import to_wire
from gpupolicy.policy.policyfile.compile import load_policy

REPO = Path(__file__).resolve().parents[3]
Key = tuple[str, str, str]  # kind, namespace, name


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[Key, Obj] = {}
        self._rv = itertools.count(1)
        self._uid = itertools.count(1)
        self.calls: list[tuple[str, str]] = []
        self.before_update: Callable[[str, Obj, bool], None] | None = None  # may raise ApiError
        self.after_list: Callable[[str], None] | None = None
        self.watchers: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.evictions: list[tuple[str, bool]] = []  # (ns/name, dry run) of every eviction answered 201
        self.before_evict: Callable[[str, str, bool], None] | None = None  # may raise ApiError
        self.informers: list[tuple[str, Callable[[str, Obj], None]]] = []

    def _key(self, kind: str, namespace: str | None, name: str) -> Key:
        return kind, (namespace or "") if RESOURCES[kind].namespaced else "", name

    def put(self, kind: str, obj: Obj) -> Obj:
        """Store as-is (status included), as a test's set-up or a concurrent writer would."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(self._uid)}")
        meta.setdefault("creationTimestamp", f"2026-01-01T00:00:{next(self._uid) % 60:02d}Z")
        meta["resourceVersion"] = str(next(self._rv))
        key = self._key(kind, meta.get("namespace"), meta["name"])
        with self._lock:
            added = key not in self.objects
            self.objects[key] = obj
            self._tell(kind, "ADDED" if added else "MODIFIED", obj)
        for changed in list(self.watchers):
            changed()
        return copy.deepcopy(obj)

    def watch(self, kind: str, stop: threading.Event, changed: Callable[[], None]) -> None:
        """Like the real list+watch: ``changed`` on every write (any kind), until ``stop``."""
        self.watchers.append(changed)
        stop.wait()

    def inform(
        self,
        kind: str,
        stop: threading.Event,
        replace: Callable[[builtins.list[Obj], str], None],
        event: Callable[[str, Obj], None],
    ) -> None:
        """Like the real informer (``Client.inform``): a list handed to ``replace``, then every write of ``kind``
        handed to ``event`` as it happens (in the writer's thread: the cache is never behind), until ``stop``."""
        self.calls.append(("inform", kind))
        with self._lock:
            items = [copy.deepcopy(o) for (k, _, _), o in sorted(self.objects.items()) if k == kind]
            self.informers.append((kind, event))
        replace(items, str(next(self._rv)))
        stop.wait()
        with self._lock:
            self.informers.remove((kind, event))

    def _tell(self, kind: str, type_: str, obj: Obj) -> None:
        for watched, event in list(self.informers):
            if watched == kind:
                event(type_, copy.deepcopy(obj))

    def list(self, kind: str) -> list[Obj]:
        self.calls.append(("list", kind))
        out = [copy.deepcopy(o) for (k, _, _), o in sorted(self.objects.items()) if k == kind]
        if self.after_list is not None:
            self.after_list(kind)
        return out

    def get(self, kind: str, namespace: str | None, name: str) -> Obj:
        self.calls.append(("get", kind))
        obj = self.objects.get(self._key(kind, namespace, name))
        if obj is None:
            raise error("not_found", f"{kind} {namespace}/{name}")
        return copy.deepcopy(obj)

    def create(self, kind: str, obj: Obj) -> Obj:
        self.calls.append(("create", kind))
        meta = obj["metadata"]
        if self._key(kind, meta.get("namespace"), meta["name"]) in self.objects:
            raise error("conflict", "already exists")
        return self.put(kind, obj)

    def update(self, kind: str, obj: Obj, *, status: bool = False) -> Obj:
        self.calls.append(("update-status" if status else "update", kind))
        if self.before_update is not None:
            self.before_update(kind, obj, status)
        meta = obj["metadata"]
        key = self._key(kind, meta.get("namespace"), meta["name"])
        stored = self.objects.get(key)
        if stored is None:
            raise error("not_found", meta["name"])
        if meta.get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise error("conflict", f"{kind} {meta['name']}: the object has been modified")
        new = copy.deepcopy(stored)
        if status:
            new["status"] = copy.deepcopy(obj.get("status") or {})
        else:
            new.update({k: copy.deepcopy(v) for k, v in obj.items() if k != "status"})
        return self.put(kind, new)

    def evict(self, namespace: str, name: str, *, uid: str = "", dry_run: bool = False) -> None:
        """pkg/registry/core/pod/storage/eviction.go, in short: a pod not running (or being deleted) goes without
        a budget check; else its one PodDisruptionBudget (more: 500) must be observed and allow a disruption (else
        429), which a real eviction decrements; then ``DisruptionTarget``/``EvictionByEvictionAPI`` and a graceful
        delete (``deletionTimestamp``: the pod stays until :meth:`delete`)."""
        self.calls.append(("evict-dry-run" if dry_run else "evict", "pods"))
        if self.before_evict is not None:
            self.before_evict(namespace, name, dry_run)
        pod = self.objects.get(("pods", namespace, name))
        if pod is None:
            raise error("not_found", f"pods {namespace}/{name}")
        if uid and pod["metadata"]["uid"] != uid:
            raise error("conflict", f"pods {namespace}/{name}: the UID in the precondition does not match")
        phase = (pod.get("status") or {}).get("phase", "Running")
        if phase == "Running" and not pod["metadata"].get("deletionTimestamp"):
            budgets = [b for b in self.of("poddisruptionbudgets") if b["metadata"]["namespace"] == namespace
                       and _selects(b, pod)]  # fmt: skip
            if len(budgets) > 1:
                raise error("api_error", "This pod has more than one PodDisruptionBudget")
            if budgets:
                budget = copy.deepcopy(budgets[0])
                status = budget.get("status") or {}
                observed = status.get("observedGeneration", 0) >= budget["metadata"].get("generation", 1)
                if not observed or status.get("disruptionsAllowed", 0) <= 0:
                    raise error(
                        "disruption_budget", "Cannot evict pod as it would violate the pod's disruption budget."
                    )
                if not dry_run:
                    status["disruptionsAllowed"] -= 1
                    status.setdefault("disruptedPods", {})[name] = "2026-01-01T00:00:00Z"
                    self.put("poddisruptionbudgets", budget)
        self.evictions.append((f"{namespace}/{name}", dry_run))
        if dry_run:
            return
        pod = copy.deepcopy(pod)
        conditions = [
            c for c in pod.setdefault("status", {}).get("conditions") or [] if c["type"] != "DisruptionTarget"
        ]
        conditions.append({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                           "message": "Eviction API: evicting"})  # fmt: skip
        pod["status"]["conditions"] = conditions
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        self.put("pods", pod)

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        """Gone for good (a terminated pod, a deleted claim), as a test's other actors do it."""
        with self._lock:
            gone = self.objects.pop(self._key(kind, namespace, name), None)
            if gone is not None:
                self._tell(kind, "DELETED", gone)
        for changed in list(self.watchers):
            changed()

    def of(self, kind: str) -> builtins.list[Obj]:
        return [o for (k, _, _), o in sorted(self.objects.items()) if k == kind]


def _selects(budget: Obj, pod: Obj) -> bool:
    """matchLabels only (what the tests use); an empty selector selects every pod of the namespace."""
    wanted = ((budget.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def example(name: str) -> tuple[Path, list[Obj], list[Obj]]:
    """An example's policy file, its DeviceClasses and its ResourceSlices (wire dicts)."""
    folder = REPO / "examples" / name
    policy = load_policy((folder / "policy.yaml").read_text(), str(folder / "policy.yaml"))
    cluster = load_cluster((folder / "cluster.yaml").read_text(), str(folder / "cluster.yaml"))
    slices = [to_wire(s) for s in cluster.slices(policy.publish_for, driver=policy.driver_name)]
    return folder / "policy.yaml", [to_wire(c) for c in policy.device_classes], slices


def strands(nodes: tuple[str, ...] = ("h100-0",)) -> FakeApi:
    """examples/first-fit-strands in an API: its DeviceClasses, and its one H100 (a dynamic MIG pool offering
    3g.40gb and 4g.40gb) as each Node of ``nodes``, with its ResourceSlices."""
    fake = FakeApi()
    _, classes, slices = example("first-fit-strands")
    for obj in classes:
        fake.put("deviceclasses", obj)
    for name in nodes:
        for s in slices:
            moved = {**s, "metadata": {**s["metadata"], "name": s["metadata"]["name"].replace("h100-0", name)}}
            moved["spec"] = {**s["spec"], "nodeName": name, "pool": {**s["spec"]["pool"], "name": name}}
            fake.put("resourceslices", moved)
        fake.put("nodes", node(name))
    return fake


def node(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


def claim(name: str, device_class: str, namespace: str = "default", count: int = 1) -> Obj:
    request: dict[str, Any] = {"name": "gpu", "exactly": {"deviceClassName": device_class}}
    if count != 1:
        request["exactly"]["count"] = count
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"devices": {"requests": [request]}},
    }


def pod(name: str, claims: list[str], namespace: str = "default", group: str | None = None, gated: bool = True) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace}
    if group:
        meta["labels"] = {"gpupolicy.dev/group": group}
    spec: Obj = {
        "resourceClaims": [{"name": f"c{i}", "resourceClaimName": c} for i, c in enumerate(claims)],
        "containers": [{"name": "c", "image": "none"}],
    }
    if gated:
        spec["schedulingGates"] = [{"name": "gpupolicy.dev/placement"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def allocated(device: str, pool: str = "h100-0", driver: str = "gpu.gpupolicy.dev") -> Obj:
    """A claim status holding one device, as a scheduler (or a stale replica) would have written it."""
    result = {"request": "gpu", "driver": driver, "pool": pool, "device": device}
    return {"allocation": {"devices": {"results": [result]}}}
