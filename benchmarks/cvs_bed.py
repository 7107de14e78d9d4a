"""The cluster side of ``controller_vs_scheduler.py``: fake nodes with the slices the plugin would publish, pods with
claims from templates created the way scheduler_perf creates them, a watch that stamps each pod when it is seen
bound, the API server's request counters, and what is left idle at the end."""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3

from gpupolicy.plugin.controller.snapshot import GATE
from gpupolicy.plugin.kube import Client, Obj
from gpupolicy.policy.cluster import load_cluster
from gpupolicy.policy.k8s.dump import to_wire
from gpupolicy.policy.policyfile.compile import load_policy
from tests.e2e.controlplane import ControlPlane
from tests.e2e.kube import node_manifest
from tests.scrape import parse

NAMESPACE = "bench"
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "APPLY")
READ_VERBS = ("GET", "LIST")

WHOLE_CLASS = "bench-gpu.gpupolicy.dev"
WHOLE_POLICY = f"""\
apiVersion: gpupolicy.dev/v1alpha1
kind: GpuPolicy
metadata: {{name: controller-vs-scheduler}}
spec:
  deviceClasses:
  - name: {WHOLE_CLASS}
    selectors:
    - cel: {{expression: 'device.attributes["gpu.gpupolicy.dev"].type == "gpu"'}}
  sharing:
  - name: whole
    exclusive: {{}}
"""
# Dynamic MIG on every H100 with two profiles: a 4g.40gb fits only at memory slot 0, a 3g.40gb at slot 0 or 4, so
# a first-fit 3g on slot 0 strands the GPU's 4g (examples/first-fit-strands, at cluster scale).
MIG_CLASSES = {"3g.40gb": "bench-mig-3g.gpupolicy.dev", "4g.40gb": "bench-mig-4g.gpupolicy.dev"}
_MIG_CLASS_YAML = "".join(
    f"""  - name: {name}
    selectors:
    - cel:
        expression: >-
          device.attributes["gpu.gpupolicy.dev"].type == "mig" &&
          device.attributes["gpu.gpupolicy.dev"].profile == "{profile}"
"""
    for profile, name in MIG_CLASSES.items()
)
MIG_POLICY = f"""\
apiVersion: gpupolicy.dev/v1alpha1
kind: GpuPolicy
metadata: {{name: controller-vs-scheduler-mig}}
spec:
  deviceClasses:
{_MIG_CLASS_YAML}  sharing:
  - name: h100-dynamic
    mig:
      dynamic: true
      profiles: [3g.40gb, 4g.40gb]
  objective: least-fragmentation
"""


@dataclass(frozen=True)
class Shape:
    nodes: int
    devices: int
    pods: int
    mig: bool

    @property
    def policy(self) -> str:
        return MIG_POLICY if self.mig else WHOLE_POLICY

    @property
    def templates(self) -> list[tuple[str, str]]:
        """(template name, device class), given to pods in turn."""
        if self.mig:
            return [(f"one-{p.split('.')[0]}", c) for p, c in MIG_CLASSES.items()]
        return [("one-gpu", WHOLE_CLASS)]

    def cluster(self) -> str:
        mig = "\n    mig: dynamic" if self.mig else ""
        return (
            "apiVersion: gpupolicy.dev/v1alpha1\nkind: ClusterDescription\nmetadata: {name: bench}\nspec:\n  nodes:\n"
            f"  - namePrefix: node\n    count: {self.nodes}\n    gpus: {{model: H100-80GB, count: {self.devices}}}"
            f"{mig}\n"
        )

    def objects(self) -> tuple[list[Obj], list[Obj]]:
        """The DeviceClasses and ResourceSlices the policy's slice builder yields (what ``gpupolicy render``
        prints and the plugin publishes)."""
        policy = load_policy(self.policy, "bench-policy.yaml")
        described = load_cluster(self.cluster(), "bench-cluster.yaml")
        classes = [to_wire(c) for c in policy.device_classes]
        slices = [to_wire(s) for s in described.slices(policy.publish_for, driver=policy.driver_name)]
        return classes, slices


def parallel(fn: Any, items: list[Any], workers: int) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def make_node(api: Client, name: str) -> None:
    """A Node as a kubelet registers it, Ready, with the not-ready taint lifted (no node lifecycle controller)."""
    wanted = node_manifest(name, pods="1000")
    created = api.create("nodes", wanted)
    created["status"] = wanted["status"]
    ready = api.update("nodes", created, status=True)
    ready["spec"]["taints"] = []
    api.update("nodes", ready)


def set_up(api: Client, shape: Shape, slices: list[Obj], classes: list[Obj], workers: int) -> None:
    """Namespace, classes, templates, nodes and their slices."""
    api.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    api.create("serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                   "metadata": {"name": "default", "namespace": NAMESPACE}})  # fmt: skip
    for cls in classes:
        api.create("deviceclasses", cls)
    for name, cls in shape.templates:
        api.create("resourceclaimtemplates", {
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": cls}}]}}},
        })  # fmt: skip
    nodes = sorted({s["spec"]["nodeName"] for s in slices})
    parallel(lambda n: make_node(api, n), nodes, workers)
    parallel(lambda s: api.create("resourceslices", s), slices, workers)


def pod(name: str, template: str, gated: bool) -> Obj:
    spec: Obj = {
        "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": template}],
        "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10.1",
                        "resources": {"claims": [{"name": "gpu"}]}}],
    }  # fmt: skip
    if gated:
        spec["schedulingGates"] = [{"name": GATE}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


def create_pods(api: Client, shape: Shape, gated: bool, workers: int, rate: float = 0.0) -> dict[str, float]:
    """Every pod from ``workers`` threads, at once (scheduler_perf: 30 goroutines, no rate limit) or, with ``rate``,
    pod i not before ``i / rate`` seconds after the first; the time each create returned (``time.perf_counter``)."""
    created: dict[str, float] = {}
    templates = shape.templates
    start = time.perf_counter()

    def one(i: int) -> None:
        if rate > 0:
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
        name = f"p{i:05d}"
        api.create("pods", pod(name, templates[i % len(templates)][0], gated))
        created[name] = time.perf_counter()

    parallel(one, list(range(shape.pods)), workers)
    return created


class Http:
    """Plain HTTPS to the test bed's API server as the admin: ``/metrics`` text and watch streams."""

    def __init__(self, plane: ControlPlane) -> None:
        self.server = plane.server
        self.headers = {"Authorization": f"Bearer {plane.token}"}
        self.pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(plane.ca_file), maxsize=4)

    def get(self, target: str) -> str:
        response = self.pool.request("GET", self.server + target, headers=self.headers, timeout=30)
        if response.status != 200:
            raise RuntimeError(f"GET {target}: {response.status} {response.data[:300]!r}")
        return str(response.data.decode())

    def requests(self) -> Counter[tuple[str, str]]:
        """``apiserver_request_total`` summed by (verb, resource[/subresource])."""
        out: Counter[tuple[str, str]] = Counter()
        samples = parse(self.get("/metrics"))
        for (name, labels), value in samples.values.items():
            if name != "apiserver_request_total":
                continue
            ls = dict(labels)
            resource = ls.get("resource", "") + (f"/{ls['subresource']}" if ls.get("subresource") else "")
            out[ls.get("verb", ""), resource] += int(value)
            if ls.get("code") == "409":
                out["CONFLICT", resource] += int(value)
        return out


PROGRESS = ("resourceclaims", "resourceclaims/status", "pods", "pods/binding")


def progress(requests: Counter[tuple[str, str]]) -> int:
    """Writes that move pods forward (claims made, allocated or reserved, gates removed, pods bound): a path is
    still working while these grow, even when no pod got bound for a while (a controller writing a big batch)."""
    return sum(n for (verb, resource), n in requests.items() if verb in ("POST", "PUT") and resource in PROGRESS)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds each process has used so far (``/proc/PID/stat``; Linux), by name."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime: fields 14 and 15 of stat(5)
    return out


class BoundWatch:
    """A watch on the benchmark's pods that stamps (``time.perf_counter``) each pod the first time it is seen with
    a node: the binding as a client of the API server sees it, to the millisecond."""

    def __init__(self, http: Http) -> None:
        self.http = http
        self.bound: dict[str, float] = {}
        self.ungated: dict[str, float] = {}
        self.stop = threading.Event()
        self.error: str = ""
        self.thread = threading.Thread(target=self._run, name="bound-watch", daemon=True)

    def start(self) -> None:
        listed = json.loads(self.http.get(f"/api/v1/namespaces/{NAMESPACE}/pods?limit=1"))
        self.version = listed["metadata"]["resourceVersion"]
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=15)

    def _run(self) -> None:
        while not self.stop.is_set():
            target = (f"/api/v1/namespaces/{NAMESPACE}/pods?watch=true&allowWatchBookmarks=true"
                      f"&timeoutSeconds=5&resourceVersion={self.version}")  # fmt: skip
            try:
                response = self.http.pool.request(
                    "GET", self.http.server + target, headers=self.http.headers, preload_content=False,
                    timeout=urllib3.Timeout(connect=5, read=40),
                )  # fmt: skip
                buffer = b""
                for chunk in response.stream(65536):
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            self._event(json.loads(line))
                    if self.stop.is_set():
                        break
                response.release_conn()
            except Exception as exc:  # a broken stream: resume from the last version seen
                self.error = f"{type(exc).__name__}: {exc}"
                self.stop.wait(0.2)

    def _event(self, event: Obj) -> None:
        obj = event.get("object") or {}
        if event.get("type") == "ERROR":
            raise RuntimeError(f"watch error: {obj.get('message')}")
        self.version = obj["metadata"]["resourceVersion"]
        if event.get("type") not in ("ADDED", "MODIFIED"):
            return
        spec, now = obj.get("spec") or {}, time.perf_counter()
        if not spec.get("schedulingGates"):
            self.ungated.setdefault(obj["metadata"]["name"], now)
        if spec.get("nodeName"):
            self.bound.setdefault(obj["metadata"]["name"], now)


@dataclass
class Leftover:
    unplaced_pods: int
    unallocated_claims: int
    partly_used: int
    idle: int
    unit: str
    double_allocated: list[str] = field(default_factory=list)


def leftover(api: Client, shape: Shape, slices: list[Obj]) -> Leftover:
    """At the end: pods not bound, claims not allocated, and what is idle on partly used hardware: whole GPUs free
    on nodes with some GPUs in use, or (MIG) memory slices free on GPUs with some slices in use."""
    pods = [p for p in api.list("pods") if p["metadata"]["namespace"] == NAMESPACE]
    claims = [c for c in api.list("resourceclaims") if c["metadata"]["namespace"] == NAMESPACE]
    taken: Counter[tuple[str, str]] = Counter()
    unallocated = 0
    for claim in claims:
        alloc = (claim.get("status") or {}).get("allocation")
        if not alloc:
            unallocated += 1
            continue
        for result in alloc["devices"]["results"]:
            taken[result["pool"], result["device"]] += 1
    doubles = sorted(f"{p}/{d}" for (p, d), n in taken.items() if n > 1)
    unbound = sum(1 for p in pods if not p["spec"].get("nodeName"))
    # missing claims (the claim controller did not get to them) are unplaced too
    unallocated += sum(1 for p in pods if not (p.get("status") or {}).get("resourceClaimStatuses"))
    if not shape.mig:
        used: Counter[str] = Counter(pool for pool, _ in taken)
        partly = [pool for pool, n in used.items() if 0 < n < shape.devices]
        idle = sum(shape.devices - used[p] for p in partly)
        return Leftover(unbound, unallocated, len(partly), idle, "GPUs on partly used nodes", doubles)
    total: dict[tuple[str, str], set[str]] = defaultdict(set)
    consumes: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for s in slices:
        pool = s["spec"]["pool"]["name"]
        for counter_set in s["spec"].get("sharedCounters") or []:
            slots = {c for c in counter_set["counters"] if c.startswith("memory-slice-")}
            total[pool, counter_set["name"]] |= slots
        for device in s["spec"].get("devices") or []:
            consumes[pool, device["name"]] = [
                (c["counterSet"], k)
                for c in device.get("consumesCounters") or []
                for k in c["counters"]
                if k.startswith("memory-slice-")
            ]
    used_slots: dict[tuple[str, str], set[str]] = defaultdict(set)
    for pool, device in taken:
        for counter_set, slot in consumes.get((pool, device), []):
            used_slots[pool, counter_set].add(slot)
    partly_gpus = [g for g, s in used_slots.items() if 0 < len(s) < len(total[g])]
    idle = sum(len(total[g]) - len(used_slots[g]) for g in partly_gpus)
    return Leftover(unbound, unallocated, len(partly_gpus), idle, "memory slices on partly used GPUs", doubles)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (``q`` in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]
