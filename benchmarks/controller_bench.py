"""Benchmark the placement controller on the real test bed: throughput and gate-to-allocation latency.

Run: ``python benchmarks/controller_bench.py [--sizes 10 100 1000] [--repeat 1]``

etcd + kube-apiserver from the end-to-end test bed (``scripts/build-testbed``, cached); no scheduler (binding is the
scheduler's cost, not ours). Per batch size N: fresh fake nodes with 8 whole H100s each (25 % more GPUs than
claims), N ResourceClaims for one GPU each and N pods gated with ``gpupolicy.dev/placement`` that use them, created
one after the other through the API; then one pass of one long-running controller (``Controller.step``, batch
window closed). Earlier batches' allocations stay in the cluster, so later batches solve against them.

* throughput: N / (first pod created → last allocation written), and N / controller pass (read + solve + write);
* latency: per claim, its pod's creation → its allocation written (median, p95, max), and → its pod's gate
  removed (``ungated_*``: the pod can be scheduled from then on); includes the time the other pods of the batch
  took to be created, as a real burst would;
* the pass split into reading the cluster, solving (the solver's wall time) and writing (claims + gates).

The controller keeps its cache from watches, as ``controller run`` does (``--no-cache``: every pass lists the
cluster, as before the cache); a pass starts once the cache has seen the whole burst (``cache_wait_s``).

The live loop adds its batch window (``--batch-window``, default 0.5 s) and up to one poll interval to the latency.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpupolicy.plugin.controller.loop import Config, Controller  # noqa: E402
from gpupolicy.plugin.controller.placer import Settings  # noqa: E402
from gpupolicy.plugin.kube import ApiError, Client, Obj  # noqa: E402
from gpupolicy.policy.cluster import load_cluster  # noqa: E402
from gpupolicy.policy.k8s.dump import to_wire  # noqa: E402
from gpupolicy.policy.policyfile.compile import load_policy  # noqa: E402
from gpupolicy.solver.result import SolveParams  # noqa: E402
from tests.e2e.controlplane import build_testbed, control_plane  # noqa: E402

POLICY = """\
apiVersion: gpupolicy.dev/v1alpha1
kind: GpuPolicy
metadata: {name: controller-bench}
spec:
  deviceClasses:
  - name: bench-gpu.gpupolicy.dev
    selectors:
    - cel: {expression: 'device.attributes["gpu.gpupolicy.dev"].type == "gpu"'}
  sharing:
  - name: whole
    exclusive: {}
"""


def cluster(prefix: str, nodes: int) -> str:
    return (
        "apiVersion: gpupolicy.dev/v1alpha1\nkind: ClusterDescription\nmetadata: {name: bench}\nspec:\n  nodes:\n"
        f"  - namePrefix: {prefix}\n    count: {nodes}\n    gpus: {{model: H100-80GB, count: 8}}\n"
    )


class Timed:
    """The real client, recording when each claim's allocation write returned, and each pod's gate removal."""

    def __init__(self, real: Client) -> None:
        self.real = real
        self.written: dict[str, float] = {}
        self.ungated: dict[str, float] = {}  # by the pod's claim name (pNNNN uses cNNNN)

    def list(self, kind: str) -> list[Obj]:
        return self.real.list(kind)

    def get(self, kind: str, namespace: str | None, name: str) -> Obj:
        return self.real.get(kind, namespace, name)

    def inform(self, *args: Any) -> None:
        self.real.inform(*args)

    def create(self, kind: str, obj: Obj) -> Obj:
        return self.real.create(kind, obj)

    def update(self, kind: str, obj: Obj, *, status: bool = False) -> Obj:
        out = self.real.update(kind, obj, status=status)
        if kind == "resourceclaims" and status and (obj.get("status") or {}).get("allocation"):
            self.written[obj["metadata"]["name"]] = time.perf_counter()
        if kind == "pods" and not status and not (obj.get("spec") or {}).get("schedulingGates"):
            self.ungated["c" + obj["metadata"]["name"][1:]] = time.perf_counter()
        return out


def publish(api: Client, prefix: str, gpus: int) -> None:
    policy = load_policy(POLICY, "bench-policy.yaml")
    described = load_cluster(cluster(prefix, math.ceil(gpus / 8)), "bench-cluster.yaml")
    for cls in policy.device_classes:
        with contextlib.suppress(ApiError):  # already there from an earlier batch
            api.create("deviceclasses", to_wire(cls))
    for s in described.slices(policy.publish_for, driver=policy.driver_name):
        api.create("resourceslices", to_wire(s))


def batch(api: Client, timed: Timed, controller: Controller, size: int, index: int) -> dict[str, Any]:
    namespace = f"bench-{index}-{size}"
    api.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}}
    api.create("serviceaccounts", account)
    publish(api, f"n{index}s{size}", math.ceil(size * 1.25))
    created: dict[str, float] = {}
    first = time.perf_counter()
    for i in range(size):
        name = f"c{i:04d}"
        api.create("resourceclaims", {
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"devices": {"requests": [
                {"name": "gpu", "exactly": {"deviceClassName": "bench-gpu.gpupolicy.dev"}}]}},
        })  # fmt: skip
        api.create("pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i:04d}", "namespace": namespace},
            "spec": {"schedulingGates": [{"name": "gpupolicy.dev/placement"}],
                     "resourceClaims": [{"name": "gpu", "resourceClaimName": name}],
                     "containers": [{"name": "c", "image": "none", "resources": {"claims": [{"name": "gpu"}]}}]},
        })  # fmt: skip
        created[name] = time.perf_counter()
    synced = time.perf_counter()
    while getattr(controller, "informed", None) is not None:  # the cache (watches) has seen the whole burst
        snapshot = controller.informed.snapshot()
        if sum(ns == namespace for ns, _ in snapshot.claims) >= size and len(snapshot.pods) >= size:
            break
        time.sleep(0.01)
    start = time.perf_counter()
    results = [controller.step(force=True)]
    while getattr(results[-1], "more", False):  # past --max-batch: the next batch at once, as the live loop does
        results.append(controller.step(force=True))
    result = results[-1]
    end = time.perf_counter()
    mine = {k: v for k, v in timed.written.items() if k in created}
    assert len(mine) == size, f"placed {len(mine)} of {size}: {result.skipped or result.unplaced}"
    latencies = sorted(mine[k] - created[k] for k in mine)
    gone = sorted(timed.ungated[k] - created[k] for k in mine if k in timed.ungated)
    solve_s = sum(r.plan.solve_s for r in results if r.plan)
    first_write = min(mine.values())
    return {
        "claims": size,
        "create_s": round(synced - first, 3),
        "cache_wait_s": round(start - synced, 3),
        "pass_s": round(end - start, 3),
        "read_solve_s": round(first_write - start, 3),
        "solve_s": round(solve_s, 3),
        "write_s": round(end - first_write, 3),
        "claims_per_s_pass": round(size / (end - start), 1),
        "claims_per_s_end_to_end": round(size / (max(mine.values()) - first), 1),
        "latency_median_s": round(statistics.median(latencies), 3),
        "latency_p95_s": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3),
        "latency_max_s": round(latencies[-1], 3),
        "ungated_median_s": round(statistics.median(gone), 3) if gone else None,
        "ungated_p95_s": round(gone[min(len(gone) - 1, int(0.95 * len(gone)))], 3) if gone else None,
        "ungated_max_s": round(gone[-1], 3) if gone else None,
        "batches": len(results),
        "status": result.plan.status if result.plan else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-cache", action="store_true", help="every pass lists the cluster (no watches)")
    args = parser.parse_args()
    bin_dir = build_testbed(45 * 60)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpupolicy-bench-") as work, control_plane(bin_dir, Path(work)) as plane:
        api = Client(plane.kubeconfig)
        timed = Timed(api)
        settings = Settings(policy=(POLICY, "bench-policy.yaml"), params=SolveParams(time_limit_s=30, workers=1))
        controller = Controller(timed, Config("bench", settings))  # one long-running controller, as in a cluster
        stop = threading.Event()
        if not args.no_cache:  # (--no-cache also runs this script against a controller from before the cache)
            controller.inform(stop)  # the cache `controller run` keeps from watches
        for rep in range(args.repeat):
            for size in args.sizes:
                row = batch(api, timed, controller, size, rep)
                rows.append(row)
                print(json.dumps(row), flush=True)
        stop.set()
        api.close()
    print(f"# {platform.node()} {time.strftime('%Y-%m-%d')} python {platform.python_version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
