"""Benchmark the kubelet plugin: prepare latency under concurrency, and start-up to first publish.

Run: ``python benchmarks/plugin_bench.py [--runs 5] [--apiserver stub|real] [--cases shared exclusive mig floor]``

The plugin runs as its own process (``gpupolicy plugin run --nvml sim:8xH100-80GB``) against the
HTTP API-server stand-in (``tests.fakes.kube_stub``), or with ``--apiserver real`` against etcd +
kube-apiserver from the end-to-end test bed (its binaries must be built, see docs/e2e.md); a
kubelet-like client in this process talks to it over the real unix sockets, one thread per
claim, all released at once.

* shared: 64 concurrent full-GPU claims on 8 GPUs published with ``shares: 8`` (8 claims per GPU);
* exclusive: 8 waves of 8 concurrent claims for whole exclusive GPUs (unprepared between waves);
* mig: 8 waves of 7 concurrent claims for dynamic ``1g.10gb`` MIG devices (includes simulated MIG creation);
* floor: the shared case's waves against an empty gRPC server (what gRPC and this client cost alone);
* start-up: process start to a complete pool on the API server, and in-process ``Plugin.start`` to
  the first publish (without interpreter start-up and imports).

Latency is per call at the client, and inside the plugin as its shutdown summary reports it: since
the client stamped the call (``gpupolicy.plugin.kubelet.server.SENT_AT_KEY``; includes any wait before the plugin's code
runs, and the client's own delay between stamping and sending), since gRPC handed the call to the
plugin's code, and (older plugins) the handler alone. CPU time per claim of the plugin, the API
stand-in and this client process is read from ``/proc`` around the waves.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpupolicy.plugin.kubelet.server import SENT_AT_KEY  # noqa: E402
from tests.fakes.kube import FakeKube  # noqa: E402
from tests.plugin.kubelet.proc import PluginProcess  # noqa: E402

NODE = "node-a"
DRIVER = "gpu.gpupolicy.dev"
POLICY = """\
apiVersion: gpupolicy.dev/v1alpha1
kind: GpuPolicy
metadata: {{name: bench}}
spec:
  driverName: gpu.gpupolicy.dev
  sharing:
  - name: all
    {rule}
"""
RULES = {
    "shared": "shares: {count: 8, defaultMemory: 8Gi}",
    "exclusive": "exclusive: {}",
    "mig": "mig: {dynamic: true}",
}


def _claim(device: str, share: bool) -> dict[str, Any]:
    name = f"c-{uuid.uuid4().hex[:8]}"
    result: dict[str, Any] = {"request": "gpu", "driver": DRIVER, "pool": NODE, "device": device}
    if share:
        result["shareID"] = str(uuid.uuid4())
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "bench", "uid": str(uuid.uuid4())},
        "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu"}}]}},
        "status": {"allocation": {"devices": {"results": [result]}}},
    }


def _ref(claim: dict[str, Any]) -> tuple[str, str, str]:
    meta = claim["metadata"]
    return (meta["namespace"], meta["uid"], meta["name"])


def _waves(mode: str, runs: int) -> list[list[dict[str, Any]]]:
    waves: list[list[dict[str, Any]]] = []
    for _ in range(runs):
        if mode == "shared":
            waves.append([_claim(f"gpu-{i % 8}", True) for i in range(64)])
        elif mode == "exclusive":
            waves.extend([_claim(f"gpu-{i}", False) for i in range(8)] for _ in range(8))
        else:
            waves.extend([_claim(f"gpu-{g}-mig-1g10gb-19-{s}", False) for s in range(7)] for g in range(8))
    return waves


def _published(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/apis/resource.k8s.io/v1/resourceslices", timeout=2) as response:
            slices = json.load(response)["items"]
    except OSError:
        return False
    return bool(slices) and all(s["spec"]["pool"]["resourceSliceCount"] == len(slices) for s in slices)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _concurrent(kubelet: Any, claims: list[tuple[str, str, str]]) -> list[float]:
    barrier = threading.Barrier(len(claims))
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    conn = kubelet.connect()

    def one(claim: tuple[str, str, str]) -> None:
        request = conn.pb.NodePrepareResourcesRequest(
            claims=[conn.pb.Claim(namespace=claim[0], uid=claim[1], name=claim[2])]
        )
        barrier.wait()
        begin = time.perf_counter()
        sent = [(SENT_AT_KEY, str(time.monotonic_ns()))]
        response = conn.stub.NodePrepareResources(request, timeout=45, metadata=sent)
        elapsed = time.perf_counter() - begin
        with lock:
            latencies.append(elapsed)
            if response.claims[claim[1]].error:
                errors.append(response.claims[claim[1]].error)

    threads = [threading.Thread(target=one, args=(c,)) for c in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    kubelet.unprepare(claims)
    return latencies


STATS = (" (since sent)", "", " (handler only)")
"""The plugin's summary lines: from the client's stamp (includes any wait before the plugin's code runs);
from the call being handed to the plugin's code; the handler alone (older versions)."""


def _server_stats(logs: str, key: str) -> str:
    """p50 / p99 of the plugin's own summary line ``NodePrepareResources<key>: ...`` ("-" when absent)."""
    found = re.search(rf"NodePrepareResources{re.escape(key)}: \d+ calls, p50=([\d.]+)ms p99=([\d.]+)ms", logs)
    return f"{found[1]} / {found[2]}" if found else "-"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (0 for pid 0)."""
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


@contextlib.contextmanager
def stub_api(root: Path, claims: list[dict[str, Any]]) -> Iterator[tuple[Path, str, int | None]]:
    """The HTTP stand-in as its own process, holding ``claims``: (kubeconfig, URL, its process ID)."""
    claims_file = root / "claims.yaml"
    claims_file.write_text(yaml.safe_dump_all(claims))
    port = _free_port()
    kubeconfig = root / "kc"
    api = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.kube_stub", "--port", str(port), "--kubeconfig-out", str(kubeconfig),
         "--node", NODE, str(claims_file)],
        cwd=REPO, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert api.stdout is not None
    api.stdout.readline()  # "serving ..." once the claims are loaded
    try:
        yield kubeconfig, f"http://127.0.0.1:{port}", api.pid
    finally:
        api.kill()
        api.wait()


@contextlib.contextmanager
def real_api(root: Path, claims: list[dict[str, Any]]) -> Iterator[tuple[Path, str, int | None]]:
    """etcd + kube-apiserver of the end-to-end test bed (tests/e2e), holding ``claims`` (status via /status)."""
    from tests.e2e.controlplane import build_testbed, control_plane
    from tests.e2e.kube import Kube, create_namespace, create_node

    with control_plane(build_testbed(900), root / "testbed") as plane:
        kube = Kube.connect(plane.server, plane.token, plane.ca_file, root / "discovery")
        create_node(kube, NODE)
        create_namespace(kube, "bench")
        for claim in claims:
            body = {k: v for k, v in claim.items() if k != "status"}
            created = kube.create(body)
            created["status"] = claim["status"]
            claim["metadata"]["uid"] = kube.replace_status(created)["metadata"]["uid"]
        yield plane.kubeconfig, "", None


def _wait_published(url: str, kubeconfig: Path) -> None:
    if url:
        while not _published(url):
            time.sleep(0.005)
        return
    from gpupolicy.plugin.kubelet.api import NodeApi

    kube = NodeApi(kubeconfig)
    while True:
        slices = kube.list_slices(DRIVER, NODE)
        if slices and all(s["spec"]["pool"]["resourceSliceCount"] == len(slices) for s in slices):
            return
        time.sleep(0.005)


def bench_prepare(mode: str, runs: int, apiserver: str) -> tuple[list[float], float, str]:
    """Plugin, API server and this client in separate processes."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        waves = _waves(mode, runs)
        serve = real_api if apiserver == "real" else stub_api
        with serve(root, [c for wave in waves for c in wave]) as (kubeconfig, url, api_pid):
            policy = root / "policy.yaml"
            policy.write_text(POLICY.format(rule=RULES[mode]))
            nvml = "sim:8xH100-80GB:mig" if mode == "mig" else "sim:8xH100-80GB"
            shm = Path("/dev/shm")  # the CDI root is tmpfs (/var/run/cdi) on real nodes
            cdi = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else None
            proc = PluginProcess(root, kubeconfig, nvml=nvml, extra=["--policy", str(policy)], cdi=cdi)
            try:
                begin = time.perf_counter()
                proc.start()
                _wait_published(url, kubeconfig)
                startup = time.perf_counter() - begin
                kubelet = proc.kubelet()
                kubelet.connect()
                samples: list[float] = []
                assert proc.proc is not None
                pids = [proc.proc.pid, api_pid or 0, os.getpid()]
                cpu = [_cpu_seconds(pid) for pid in pids]
                for wave in waves:
                    samples.extend(_concurrent(kubelet, [_ref(c) for c in wave]))
                cpu = [_cpu_seconds(pid) - before for pid, before in zip(pids, cpu)]
                kubelet.close()
                proc.terminate()
                server = " | ".join(_server_stats(proc.logs(), key) for key in STATS)
                per_claim = " / ".join(f"{c / len(samples) * 1000:.2f}" if pid else "-" for pid, c in zip(pids, cpu))
                return samples, startup, f"{server} | {per_claim}"
            finally:
                proc.kill()
                if cdi is not None:
                    shutil.rmtree(cdi, ignore_errors=True)


def serve_floor(sock: Path, cpu_ms: float) -> None:
    """An empty DRA v1 server on ``sock`` until stdin closes: each claim is answered with one device after
    ``cpu_ms`` of busy CPU (0: at once), with the plugin's own call statistics. It measures what gRPC and the
    client cost without the plugin, and what a plugin costing only ``cpu_ms`` per claim could reach."""
    import asyncio

    import grpc

    from gpupolicy.plugin.kubelet.proto import dra_v1_pb2, dra_v1_pb2_grpc
    from gpupolicy.plugin.kubelet.server import CallStats

    stats = CallStats()

    class Empty:
        async def NodePrepareResources(self, request: Any, context: Any) -> Any:
            begin = time.perf_counter()
            while time.perf_counter() - begin < cpu_ms / 1000:
                pass
            response = dra_v1_pb2.NodePrepareResourcesResponse()
            for claim in request.claims:
                response.claims[claim.uid].devices.add(
                    request_names=["gpu"], pool_name=NODE, device_name="gpu-0",
                    cdi_device_ids=[f"k8s.{DRIVER}/claim={claim.uid}-gpu-0"],
                )  # fmt: skip
            stats.add("NodePrepareResources", time.perf_counter() - begin)
            stats.add_since_sent("NodePrepareResources", context)
            return response

        async def NodeUnprepareResources(self, request: Any, context: Any) -> Any:
            response = dra_v1_pb2.NodeUnprepareResourcesResponse()
            for claim in request.claims:
                response.claims[claim.uid].error = ""
            return response

    async def run() -> None:
        server = grpc.aio.server()
        dra_v1_pb2_grpc.add_DRAPluginServicer_to_server(Empty(), server)
        server.add_insecure_port(f"unix://{sock}")
        await server.start()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.stop(0)
        print("\n".join(stats.summary()), flush=True)

    asyncio.run(run())


class _Direct:
    """A client of the empty server: ``_concurrent`` needs ``connect`` and ``unprepare``."""

    def __init__(self, sock: Path) -> None:
        import grpc

        from gpupolicy.plugin.kubelet.proto import dra_v1_pb2, dra_v1_pb2_grpc

        self.channel = grpc.insecure_channel(f"unix://{sock}")
        self.pb = dra_v1_pb2
        self.stub = dra_v1_pb2_grpc.DRAPluginStub(self.channel)

    def connect(self) -> _Direct:
        return self

    def unprepare(self, claims: list[tuple[str, str, str]]) -> None:
        request = self.pb.NodeUnprepareResourcesRequest(
            claims=[self.pb.Claim(namespace=c[0], uid=c[1], name=c[2]) for c in claims]
        )
        self.stub.NodeUnprepareResources(request, timeout=45)


def bench_floor(runs: int, cpu_ms: float) -> tuple[list[float], str]:
    """The shared case's waves against the empty server (its own process), with the same client."""
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        sock = Path(tmp) / "floor.sock"
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve-floor", str(sock), "--floor-cpu-ms", str(cpu_ms)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stdin is not None and server.stdout is not None
        server.stdout.readline()
        client = _Direct(sock)
        pids = [server.pid, 0, os.getpid()]
        cpu = [_cpu_seconds(pid) for pid in pids]
        samples: list[float] = []
        for wave in _waves("shared", runs):
            samples.extend(_concurrent(client, [_ref(c) for c in wave]))
        cpu = [_cpu_seconds(pid) - before for pid, before in zip(pids, cpu)]
        client.channel.close()
        server.stdin.close()
        logs = server.stdout.read()
        server.wait()
    stats = " | ".join(_server_stats(logs, key) for key in STATS)
    per_claim = " / ".join(f"{c / len(samples) * 1000:.2f}" if pid else "-" for pid, c in zip(pids, cpu))
    return samples, f"{stats} | {per_claim}"


def bench_startup_in_process(runs: int) -> list[float]:
    from gpupolicy.plugin.kubelet.driver import Options, Plugin
    from gpupolicy.plugin.kubelet.nvml.sim import SimNvml
    from gpupolicy.plugin.kubelet.sharing import FakeRunner

    out = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            kube = FakeKube()
            kube.put_node(NODE)
            options = Options(
                node=NODE, driver=DRIVER, plugin_dir=root / "p", registry_dir=root / "r",
                cdi_root=root / "cdi", state_dir=root / "s", nvml="sim:8xH100-80GB",
            )  # fmt: skip
            begin = time.perf_counter()
            plugin = Plugin(options, kube=kube, nvml=SimNvml("8xH100-80GB", seed=NODE), runner=FakeRunner())
            plugin.start()
            assert plugin.publisher is not None and plugin.publisher.published.wait(10)
            out.append(time.perf_counter() - begin)
            plugin.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--apiserver",
        choices=["stub", "real"],
        default="stub",
        help="the HTTP stand-in, or etcd + kube-apiserver built by the e2e test bed (needs its binaries)",
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=[*RULES, "floor"],
        default=list(RULES),
        help="floor: the shared case's waves against an empty gRPC server (what gRPC and the client cost alone)",
    )
    parser.add_argument(
        "--floor-cpu-ms", type=float, default=0.0, help="busy CPU per claim in the floor case's server (default 0)"
    )
    parser.add_argument("--serve-floor", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(args.serve_floor, args.floor_cpu_ms)
        return
    startups = []
    print(
        "| case | claims | client p50 ms | client p99 ms | client max ms | plugin since sent p50 / p99 ms "
        "| plugin since handed over p50 / p99 ms | handler only p50 / p99 ms "
        "| CPU ms per claim: plugin / API stand-in / client |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    for mode in args.cases:
        if mode == "floor":
            samples, server = bench_floor(args.runs, args.floor_cpu_ms)
        else:
            samples, startup, server = bench_prepare(mode, args.runs, args.apiserver)
            startups.append(startup)
        p50, p99, worst = _pct(samples, 0.5), _pct(samples, 0.99), max(samples) * 1000
        print(f"| {mode} | {len(samples)} | {p50:.1f} | {p99:.1f} | {worst:.1f} | {server} |", flush=True)
    if not startups:
        return
    inproc = bench_startup_in_process(args.runs)
    print()
    print(f"start-up to first publish, plugin process (python start + imports + publish over HTTP, {args.apiserver}): "
          f"median {statistics.median(startups) * 1000:.0f} ms of {len(startups)} starts")  # fmt: skip
    print(f"start-up to first publish, in process (Plugin.start -> published): "
          f"median {statistics.median(inproc) * 1000:.0f} ms of {len(inproc)} runs")  # fmt: skip


if __name__ == "__main__":
    main()
