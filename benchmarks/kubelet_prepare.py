"""Prepare latency as the real kubelet sees it: N pods with claims created at once on one node with 8 simulated GPUs.

Run: ``python benchmarks/kubelet_prepare.py [--pods 64] [--cases exclusive mig shared] [-o table|json]``
(as root, with the test bed built: ``scripts/build-testbed``, or ``GPUPOLICY_TESTBED_BIN`` naming its binaries).

Everything runs on this machine: etcd, kube-apiserver, kube-scheduler and kube-controller-manager
(``tests/e2e/controlplane.py``), and for each case a fresh node (``tests/e2e/node.KubeletNode``: the real kubelet,
the CRI stand-in that runs nothing, and ``gpupolicy plugin run`` with simulated NVML) whose 8 GPUs are all of the
case's kind:

* exclusive: ``sim:8xH100-80GB``, every GPU ``exclusive``, claims for whole GPUs; 8 fit at a time;
* mig: ``sim:8xH100-80GB:mig``, every GPU dynamic MIG, claims for ``1g.10gb`` (the plugin creates the MIG device in
  prepare); 7 per GPU, 56 fit at a time;
* shared: ``sim:8xH100-80GB``, every GPU with ``shares: ceil(N/8)`` (consumable capacity), so all N fit at once.

Pods are created in waves of at most the case's capacity: a wave's pods are created at once (concurrent POSTs),
then the benchmark waits until all are Running, deletes them gracefully and waits until they are gone, their
claims are gone (deallocated) and both the kubelet and the plugin count no claim in use, before the next wave.
With the default 64 pods: exclusive 8 waves of 8, mig 56 + 8, shared 1 wave of 64.

What it reports per case:

* prepare p50/p99 from the kubelet's own histogram ``dra_grpc_operations_duration_seconds`` (method
  ``.../NodePrepareResources``: the gRPC call to the plugin, timed by the kubelet's client interceptor), the
  difference of a scrape of the kubelet's ``/metrics`` before and after the case, with quantiles computed as
  Prometheus' ``histogram_quantile`` does (linear within the bucket). The kubelet's buckets start at 100 ms
  (``ExponentialBucketsRange(0.1, 40, 15)``): while every call takes less than 100 ms, the p50 and p99 are exactly
  50 and 99 ms whatever the calls took, so the bucket each quantile fell in is printed next to it (and the
  bounds themselves, ``prepare_buckets_ms``), and the histogram's exact mean (sum / count);
* prepare p50/p99/max per call from the kubelet's own log (its ``--v=4`` lines "Calling NodePrepareResources rpc"
  and "Done calling NodePrepareResources rpc", microsecond timestamps, paired by claim UID): the same call, not
  limited by buckets; and the kubelet's time from starting a pod's prepare ("Processing resource": it reads the
  claim from the API server) to sending the call (with ``--kubelet-v 3`` these are absent);
* pod creation to Running, p50/p99/max, measured here: from just before the pod's POST to the arrival of the
  first watch event that shows it ``Running`` (one monotonic clock; the API server's timestamps have whole
  seconds only);
* the plugin's own view for comparison: its ``gpupolicy_plugin_prepare_duration_seconds`` histogram (from gRPC
  handing the call over to the response; buckets 1, 2.5, 5, 10, 20, 50 ms, ...), same before/after difference,
  and the exact p50/p99 of the summary it logs when it stops;
* exact means, for where the time goes: the kubelet's whole PrepareResources (``dra_operations_duration_seconds``:
  its claim GET, its cache, the call) and the API server's GET of a ResourceClaim (kubelet's and plugin's alike).

Before the first wave the node is Ready, the plugin registered and its pool complete, and the benchmark waits 1 s
(the scheduler's informers, the node's start-up load). Percentiles of samples are nearest-rank. One run with the
default 64 pods takes about 70 s on 2 vCPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.controlplane import (  # noqa: E402
    ControlPlane,
    build_testbed,
    control_plane,
    start_controller_manager,
    start_scheduler,
)
from tests.e2e.kube import Kube, KubeError, create_namespace  # noqa: E402
from tests.e2e.kubelet.pods import CLASSES, claim_pod, claim_template  # noqa: E402
from tests.e2e.node import KubeletNode  # noqa: E402
from tests.e2e.pluginproc import MIXED_POLICY  # noqa: E402
from tests.scrape import Histogram, histogram, histogram_quantile, parse  # noqa: E402

DRIVER = "gpu.gpupolicy.dev"
GPUS = 8
MIG_PER_GPU = 7  # 1g.10gb instances on an H100-80GB
H100_MIB = 80000  # a little under the simulated H100's 81,559 MiB
# The controllers the kubelet tests run (tests/e2e/kubelet/conftest.py), without the Helm chart's DaemonSet.
CONTROLLERS = (
    "resourceclaim-controller",
    "node-lifecycle-controller",
    "root-ca-certificate-publisher-controller",
    "garbage-collector-controller",
)
KUBELET_RPC = "dra_grpc_operations_duration_seconds"  # the gRPC call, in the kubelet's client interceptor
KUBELET_OP = "dra_operations_duration_seconds"  # the kubelet's whole PrepareResources (claim GETs included)
APISERVER = "apiserver_request_duration_seconds"
PLUGIN_PREPARE = "gpupolicy_plugin_prepare_duration_seconds"
WAVE_TIMEOUT_S = 180.0
POLICY = """\
apiVersion: gpupolicy.dev/v1alpha1
kind: GpuPolicy
metadata: {{name: kubelet-prepare-{case}}}
spec:
  driverName: gpu.gpupolicy.dev
  sharing:
  - name: all
    {rule}
"""


@dataclass(frozen=True)
class Case:
    name: str
    nvml: str
    rule: str  # the policy's one sharing rule, for every GPU
    device_class: str
    capacity: int  # claims that fit on the node at once


def make_cases(pods: int) -> dict[str, Case]:
    shares = max(1, math.ceil(pods / GPUS))
    share_rule = f"shares: {{count: {shares}, defaultMemory: {H100_MIB // shares}Mi}}"
    return {
        "exclusive": Case("exclusive", "sim:8xH100-80GB", "exclusive: {}", CLASSES["whole"], GPUS),
        "mig": Case("mig", "sim:8xH100-80GB:mig", "mig: {dynamic: true}", CLASSES["mig"], GPUS * MIG_PER_GPU),
        "shared": Case("shared", "sim:8xH100-80GB", share_rule, CLASSES["shared"], GPUS * shares),
    }


def waves(pods: int, capacity: int) -> list[int]:
    """Wave sizes: as many full waves of ``capacity`` as needed, the rest last."""
    return [min(capacity, pods - start) for start in range(0, pods, capacity)]


# --- metrics -------------------------------------------------------------------------------------------------------


def scrape_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def gauge(text: str, name: str, **labels: str) -> float:
    """A gauge's value; 0 when the page does not have it (the kubelet shows a claim gauge once it was used)."""
    try:
        return parse(text)(name, **labels)
    except KeyError:
        return 0.0


def is_prepare(labels: dict[str, str]) -> bool:
    return labels.get("method_name", "").endswith("NodePrepareResources")


def is_failed_prepare(labels: dict[str, str]) -> bool:
    return is_prepare(labels) and labels.get("grpc_status_code") != "OK"


def is_claim_get(labels: dict[str, str]) -> bool:
    return labels.get("verb") == "GET" and labels.get("resource") == "resourceclaims" and not labels.get("subresource")


@dataclass
class Scrape:
    """The pages compared before and after a case: the kubelet's, the plugin's and the API server's."""

    kubelet: str
    plugin: str
    apiserver: str

    @classmethod
    def now(cls, kube: Kube, node: KubeletNode, plugin_url: str) -> Scrape:
        return cls(node.metrics(), scrape_text(plugin_url), str(kube.raw("GET", "/metrics")))

    def since(self, before: Scrape, page: str, name: str, keep: Callable[[dict[str, str]], bool]) -> Histogram:
        return histogram(getattr(self, page), name, keep).minus(histogram(getattr(before, page), name, keep))


# --- the kubelet's log ----------------------------------------------------------------------------------------------

KLOG = re.compile(r"^[IWEF](\d{4} \d\d:\d\d:\d\d\.\d{6})\s+\d+ \S+\] (.*)$")
UIDS = re.compile(r'uid:\\"([0-9a-f-]{36})\\"')
KEYS = re.compile(r'key:\\"([0-9a-f-]{36})\\"')
CLAIM = re.compile(r'namespace:\\"([^\\]+)\\".*?name:\\"([^\\]+)\\"')
POD = re.compile(r'pod="([^"]+)"')


def _klog_time(stamp: str) -> float:
    return datetime.strptime(f"2000{stamp}", "%Y%m%d %H:%M:%S.%f").timestamp()


def kubelet_calls(log: str) -> tuple[list[float], list[float]]:
    """From a kubelet log at ``--v=4``: the duration of every NodePrepareResources call that was answered (from
    "Calling ..." to "Done calling ...", paired by claim UID), and for each, the time since the kubelet began that
    pod's prepare ("Processing resource", the latest before the call)."""
    calls: list[float] = []
    before: list[float] = []
    processing: dict[str, float] = {}
    started: dict[str, float] = {}
    for line in log.splitlines():
        found = KLOG.match(line)
        if found is None:
            continue
        when, message = _klog_time(found[1]), found[2]
        if message.startswith('"Processing resource"') and (pod := POD.search(message)):
            processing[pod[1]] = when
        elif message.startswith('"Calling NodePrepareResources rpc"'):
            for uid in UIDS.findall(message):
                started[uid] = when
            if claim := CLAIM.search(message):  # a claim from a template: <pod>-<pod claim>-<5 random>
                pod_key = f"{claim[1]}/{claim[2].rsplit('-', 2)[0]}"
                if pod_key in processing:
                    before.append(when - processing.pop(pod_key))
        elif message.startswith('"Done calling NodePrepareResources rpc"'):
            begun = [started.pop(uid) for uid in KEYS.findall(message) if uid in started]
            if begun:
                calls.append(when - min(begun))
    return calls, before


# --- pods --------------------------------------------------------------------------------------------------------


class PodWatch:
    """A watch on one namespace's pods: when each was first seen Running and which are gone, stamped on arrival
    with ``time.monotonic()``. Established (the API server answered) when the constructor returns."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        server = urllib.parse.urlsplit(plane.server)
        context = ssl.create_default_context(cafile=str(plane.ca_file))
        self.conn = http.client.HTTPSConnection(server.hostname or "127.0.0.1", server.port, context=context)
        path = f"/api/v1/namespaces/{namespace}/pods?watch=true&timeoutSeconds=3600"
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {plane.token}"})
        response = self.conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"watch {path}: {response.status} {response.read()[:500]!r}")
        self.running: dict[str, float] = {}
        self.gone: set[str] = set()
        self.last: dict[str, dict[str, Any]] = {}
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(response,), daemon=True)
        self.thread.start()

    def _read(self, response: http.client.HTTPResponse) -> None:
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            for line in response:
                now = time.monotonic()
                event = json.loads(line)
                pod = event["object"]
                name = pod.get("metadata", {}).get("name", "")
                with self.changed:
                    self.last[name] = pod
                    if event["type"] == "DELETED":
                        self.gone.add(name)
                    elif pod.get("status", {}).get("phase") == "Running":
                        self.running.setdefault(name, now)
                    self.changed.notify_all()

    def wait(self, what: str, done: Callable[[], bool], timeout_s: float = WAVE_TIMEOUT_S) -> None:
        with self.changed:
            if not self.changed.wait_for(done, timeout=timeout_s):
                stuck = {n: p.get("status", {}) for n, p in self.last.items() if n not in self.running}
                raise TimeoutError(f"{what}: not after {timeout_s:.0f} s; pods not Running: {str(stuck)[:3000]}")

    def close(self) -> None:
        """Shut the socket down under the reader, let it end, then close."""
        with contextlib.suppress(OSError):
            if self.conn.sock is not None:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=5)
        self.conn.close()


def _poll(what: str, probe: Callable[[], bool], timeout_s: float = WAVE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout_s:.0f} s")
        time.sleep(0.05)


# --- one case -------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def started_node(plane: ControlPlane, kube: Kube, case: Case, workdir: Path, verbosity: int) -> Iterator[KubeletNode]:
    """A fresh node with all 8 GPUs of the case's kind, its pool published; stopped and deleted afterwards."""
    policy = workdir / f"policy-{case.name}.yaml"
    policy.write_text(POLICY.format(case=case.name, rule=case.rule))
    node = KubeletNode(plane, f"bench-{case.name}-{uuid.uuid4().hex[:4]}", policy, nvml=case.nvml, verbosity=verbosity)
    try:
        node.start(kube, DRIVER)
        try:
            kube.wait_for(f"the pool of {node.name}", lambda: _pool_complete(kube, node.name), timeout_s=60)
        except AssertionError as exc:
            raise RuntimeError(f"{exc}; the plugin's log:\n{node.plugin.log()}") from None
        yield node
    finally:
        node.remove(kube)


def _pool_complete(kube: Kube, node: str) -> bool:
    slices = kube.list("resource.k8s.io/v1", "ResourceSlice", field_selector=f"spec.nodeName={node}")
    return bool(slices) and all(s["spec"]["pool"]["resourceSliceCount"] == len(slices) for s in slices)


def _plugin_metrics_url(node: KubeletNode) -> str:
    """The plugin logs ``{"msg": "metrics", "address": URL}`` once it serves /metrics."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in (node.plugin.root / f"plugin-{node.plugin.starts}.log").read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("msg") == "metrics" and record.get("address"):
                    return str(record["address"])
        time.sleep(0.1)
    raise RuntimeError(f"the plugin logged no metrics address:\n{node.plugin.log()}")


def _run_wave(kube: Kube, watch: PodWatch, namespace: str, names: list[str], node: str) -> dict[str, float]:
    """Create ``names`` at once, wait until Running, delete gracefully, wait until gone: {pod: seconds to Running}."""
    sent: dict[str, float] = {}

    def create(name: str) -> None:
        sent[name] = time.monotonic()
        kube.create(claim_pod(namespace, name, node, "gpu"))

    with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
        list(pool.map(create, names))
        try:
            watch.wait(f"{len(names)} pods Running", lambda: all(n in watch.running for n in names))
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{_claims_report(kube, namespace)}") from None
        list(pool.map(lambda n: kube.delete("v1", "Pod", n, namespace, graceful=True), names))
    watch.wait(f"{len(names)} pods gone", lambda: all(n in watch.gone for n in names))
    return {n: watch.running[n] - sent[n] for n in names}


def _claims_report(kube: Kube, namespace: str) -> str:
    """For a wave that did not start: which device each claim got, and the claims without one."""
    allocated: dict[str, int] = {}
    pending = []
    for claim in kube.list("resource.k8s.io/v1", "ResourceClaim", namespace):
        results = ((claim.get("status") or {}).get("allocation") or {}).get("devices", {}).get("results") or []
        for r in results:
            allocated[r["device"]] = allocated.get(r["device"], 0) + 1
        if not results:
            pending.append(claim["metadata"]["name"])
    return f"claims per device: {dict(sorted(allocated.items()))}; not allocated: {pending}"


def _wait_unprepared(kube: Kube, node: KubeletNode, namespace: str, plugin_url: str) -> None:
    """Until the wave's claims are gone (deallocated) and neither the kubelet nor the plugin counts one in use."""
    _poll("claims deleted", lambda: not kube.list("resource.k8s.io/v1", "ResourceClaim", namespace))
    in_use = "dra_resource_claims_in_use"
    _poll("kubelet: no claim in use", lambda: gauge(node.metrics(), in_use, driver_name=DRIVER) == 0)
    prepared = "gpupolicy_plugin_prepared_claims"
    _poll("plugin: no claim prepared", lambda: gauge(scrape_text(plugin_url), prepared) == 0)


def run_case(
    plane: ControlPlane, kube: Kube, case: Case, pods: int, workdir: Path, verbosity: int = 4
) -> dict[str, Any]:
    """One case on a fresh node: the numbers of the module's docstring, by the JSON keys the report uses."""
    began = time.monotonic()
    namespace = f"bench-{case.name}-{uuid.uuid4().hex[:6]}"
    create_namespace(kube, namespace)
    kube.create(claim_template(namespace, "gpu", case.device_class))
    sizes = waves(pods, case.capacity)
    running: dict[str, float] = {}
    wave_s: list[float] = []
    try:
        with started_node(plane, kube, case, workdir, verbosity) as node:
            plugin_url = _plugin_metrics_url(node)
            time.sleep(1.0)  # let the scheduler's informers see the pool, and the node's start-up load settle
            before = Scrape.now(kube, node, plugin_url)
            watch = PodWatch(plane, namespace)
            try:
                for index, size in enumerate(sizes):
                    wave_began = time.monotonic()
                    names = [f"p-{index:02d}-{i:03d}" for i in range(size)]
                    running.update(_run_wave(kube, watch, namespace, names, node.name))
                    wave_s.append(time.monotonic() - wave_began)
                    _wait_unprepared(kube, node, namespace, plugin_url)
            finally:
                watch.close()
            after = Scrape.now(kube, node, plugin_url)
            node.plugin.stop(signal.SIGTERM)  # it logs its exact call statistics
            plugin_log = (node.plugin.root / f"plugin-{node.plugin.starts}.log").read_text(errors="replace")
            kubelet_log = node.kubelet.log.read_text(errors="replace") if node.kubelet else ""
    finally:
        with contextlib.suppress(KubeError):
            kube.delete("v1", "Namespace", namespace)
    rpc = after.since(before, "kubelet", KUBELET_RPC, is_prepare)
    result: dict[str, Any] = {"pods": pods, "waves": sizes, "capacity": case.capacity}
    for label, q in (("p50", 0.5), ("p99", 0.99)):
        value, low, high = histogram_quantile(q, rpc)
        result[f"prepare_{label}_ms"] = _ms(value)
        result[f"prepare_{label}_bucket_ms"] = [_ms(low), _ms(high)]
    result["prepare_buckets_ms"] = [_ms(le) for le in sorted(rpc.buckets) if le != math.inf]
    calls, before_rpc = kubelet_calls(kubelet_log)
    plugin = after.since(before, "plugin", PLUGIN_PREPARE, lambda labels: True)
    kubelet_op = after.since(before, "kubelet", KUBELET_OP, lambda ls: ls.get("operation_name") == "PrepareResources")
    times = list(running.values())
    result.update(
        prepare_calls=int(rpc.count),
        prepare_errors=int(after.since(before, "kubelet", KUBELET_RPC, is_failed_prepare).count),
        prepare_mean_ms=_ms(rpc.mean()),
        prepare_log_calls=len(calls),
        prepare_log_p50_ms=_ms(_pct(calls, 0.5)),
        prepare_log_p99_ms=_ms(_pct(calls, 0.99)),
        prepare_log_max_ms=_ms(max(calls, default=math.nan)),
        kubelet_before_rpc_p50_ms=_ms(_pct(before_rpc, 0.5)),
        kubelet_before_rpc_p99_ms=_ms(_pct(before_rpc, 0.99)),
        kubelet_prepare_resources_mean_ms=_ms(kubelet_op.mean()),
        apiserver_claim_get_mean_ms=_ms(after.since(before, "apiserver", APISERVER, is_claim_get).mean()),
        plugin_p50_ms=_ms(histogram_quantile(0.5, plugin)[0]),
        plugin_p99_ms=_ms(histogram_quantile(0.99, plugin)[0]),
        plugin_mean_ms=_ms(plugin.mean()),
        plugin_summary=_plugin_summary(plugin_log),
        running_p50_s=_round(_pct(times, 0.5), 3),
        running_p99_s=_round(_pct(times, 0.99), 3),
        running_max_s=_round(max(times, default=math.nan), 3),
        wave_seconds=[round(s, 2) for s in wave_s],
        seconds=round(time.monotonic() - began, 1),
    )
    return result


def _plugin_summary(log: str) -> str | None:
    """The exact p50/p99 the plugin logs at shutdown for NodePrepareResources (from gRPC handing it over)."""
    found = re.findall(r"NodePrepareResources: (\d+ calls, p50=[\d.]+ms p99=[\d.]+ms max=[\d.]+ms)", log)
    return found[-1] if found else None


def _pct(values: list[float], q: float) -> float:
    """Nearest rank (as benchmarks/plugin_bench.py): the value at index round(q * (n - 1)) of the sorted values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _round(value: float, digits: int) -> float | None:
    return None if math.isnan(value) else (value if math.isinf(value) else round(value, digits))


def _ms(seconds: float) -> float | None:
    return _round(seconds * 1000, 2)


# --- main -----------------------------------------------------------------------------------------------------------


def run(pods: int, names: list[str], verbosity: int) -> dict[str, Any]:
    """A control plane, then each case on its own fresh node."""
    cases = make_cases(pods)
    workdir = Path(tempfile.mkdtemp(prefix="gpupolicy-kubelet-prepare-"))
    try:
        with control_plane(testbed_bin(), workdir) as plane:
            start_scheduler(plane)
            start_controller_manager(plane, CONTROLLERS)
            kube = Kube.connect(plane.server, plane.token, plane.ca_file, workdir / "discovery.json")
            try:
                install_classes(kube)
                return {"cases": {name: run_case(plane, kube, cases[name], pods, workdir, verbosity) for name in names}}
            finally:
                kube.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def testbed_bin() -> Path:
    """``GPUPOLICY_TESTBED_BIN`` (as the e2e fixtures), else what ``scripts/build-testbed`` builds or has cached."""
    override = os.environ.get("GPUPOLICY_TESTBED_BIN")
    return Path(override) if override else build_testbed(45 * 60)


def install_classes(kube: Kube) -> None:
    """The test bed's DeviceClasses (tests/e2e/data/mixed-h100-policy.yaml): whole GPU, MIG 1g.10gb, shared."""
    from gpupolicy.policy.k8s.dump import to_wire
    from gpupolicy.policy.policyfile.compile import load_policy

    for device_class in load_policy(MIXED_POLICY.read_text(), str(MIXED_POLICY)).device_classes:
        kube.apply(to_wire(device_class))


def table(report: dict[str, Any]) -> str:
    rows = [
        "| case | pods (waves) | kubelet histogram p50 / p99 ms [p99 bucket] | mean ms "
        "| kubelet log p50 / p99 / max ms | kubelet before the call p50 / p99 ms | plugin p50 / p99 ms (histogram) "
        "| plugin exact (shutdown summary) | Running p50 / p99 / max s | case s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["cases"].items():
        low, high = r["prepare_p99_bucket_ms"]
        rows.append(
            f"| {name} | {r['pods']} ({' + '.join(map(str, r['waves']))}) "
            f"| {r['prepare_p50_ms']} / {r['prepare_p99_ms']} [{low}, {high}] | {r['prepare_mean_ms']} "
            f"| {r['prepare_log_p50_ms']} / {r['prepare_log_p99_ms']} / {r['prepare_log_max_ms']} "
            f"| {r['kubelet_before_rpc_p50_ms']} / {r['kubelet_before_rpc_p99_ms']} "
            f"| {r['plugin_p50_ms']} / {r['plugin_p99_ms']} | {r['plugin_summary']} "
            f"| {r['running_p50_s']} / {r['running_p99_s']} / {r['running_max_s']} | {r['seconds']} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        epilog="Capacity per case (8 GPUs): exclusive 8, mig 56 (7 x 1g.10gb per GPU), shared 8 x ceil(N/8) "
        "(shares per GPU). More pods than that run in waves of at most the capacity: each wave created at once, "
        "waited Running, deleted gracefully and waited until unprepared before the next. Needs root and the "
        "test bed's binaries (GPUPOLICY_TESTBED_BIN or scripts/build-testbed).",
    )
    parser.add_argument("--pods", type=int, default=64, help="pods (one claim each) per case (default 64)")
    names = ["exclusive", "mig", "shared"]
    parser.add_argument("--cases", nargs="+", choices=names, default=names, help="default: all three")
    parser.add_argument(
        "--kubelet-v", type=int, default=4, help="kubelet --v (default 4: per-call times from its log; 3: none)"
    )
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    args = parser.parse_args(argv)
    if args.pods < 1:
        parser.error("--pods must be at least 1")
    began = time.monotonic()
    report = run(args.pods, args.cases, args.kubelet_v)
    if args.output == "json":
        print(json.dumps(report, sort_keys=True))
    else:
        print(table(report))
        first = next(iter(report["cases"].values()))
        print(f"\nthe kubelet's buckets (ms): {', '.join(f'{b:g}' for b in first['prepare_buckets_ms'])}, +Inf")
        print(f"whole run {time.monotonic() - began:.0f} s; kubelet --v={args.kubelet_v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
