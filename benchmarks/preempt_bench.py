"""Preemption benchmark: how long a solve that may preempt takes on a full cluster, against the same solve that
may not (same run, same inputs).

    python benchmarks/preempt_bench.py [--sizes 5 20 50] [--pending 8] [--time-limit 60] [--repeat 3]

N nodes × 8 whole H100s (a cluster description), every GPU held by a running batch pod (priority 0; its allocated
claim with ``reservedFor`` and the bound pod, a quarter of them guarded by a PodDisruptionBudget that allows no
disruption), and ``--pending`` claims of priority 1000 for 1 or 2 GPUs. The whole path runs: files → compile
(``Disruption(preempt=True)``) → optimal → settle → verifier. Prints a Markdown table (medians over ``--repeat``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpupolicy.solver.inputs import read_inputs  # noqa: E402
from gpupolicy.solver.problem import Disruption  # noqa: E402
from gpupolicy.solver.result import SolveParams  # noqa: E402
from gpupolicy.solver.solve import solve  # noqa: E402
from gpupolicy.solver.verify import verify  # noqa: E402

DRIVER = "gpu.gpupolicy.dev"
POLICY = """apiVersion: gpupolicy.dev/v1alpha1
kind: GpuPolicy
metadata: {name: bench}
spec:
  deviceClasses:
  - name: gpu
    selectors:
    - cel: {expression: 'device.attributes["gpu.gpupolicy.dev"].type == "gpu"'}
  priorityTiers:
  - {name: urgent, priority: 1000, namespaces: [prod]}
  - {name: batch, priority: 0, namespaces: [batch]}
"""


def cluster(nodes: int) -> str:
    return yaml.safe_dump({
        "apiVersion": "gpupolicy.dev/v1alpha1", "kind": "ClusterDescription", "metadata": {"name": "bench"},
        "spec": {"nodes": [{"namePrefix": "node", "count": nodes, "gpus": {"model": "H100-80GB", "count": 8}}]},
    })  # fmt: skip


def running(nodes: int) -> str:
    docs = []
    for n in range(nodes):
        for g in range(8):
            pod, claim, node = f"job-{n}-{g}", f"job-{n}-{g}-gpu", f"node-{n}"
            labels = {"guard": f"{g % 4 == 0}"}
            docs.append({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod, "namespace": "batch", "uid": f"u-{pod}", "labels": labels},
                "spec": {"nodeName": node, "resourceClaims": [{"name": "g", "resourceClaimName": claim}],
                         "containers": [{"name": "c", "image": "x", "resources": {"claims": [{"name": "g"}]}}]},
                "status": {"phase": "Running"},
            })  # fmt: skip
            docs.append({
                "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                "metadata": {"name": claim, "namespace": "batch"},
                "spec": {"devices": {"requests": [{"name": "g", "exactly": {"deviceClassName": "gpu"}}]}},
                "status": {
                    "allocation": {"devices": {"results": [
                        {"request": "g", "driver": DRIVER, "pool": node, "device": f"gpu-{g}"}]}},
                    "reservedFor": [{"resource": "pods", "name": pod, "uid": f"u-{pod}"}],
                },
            })  # fmt: skip
    docs.append({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "guard", "namespace": "batch"},
        "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"guard": "True"}}},
    })  # fmt: skip
    return yaml.safe_dump_all(docs)


def pending(count: int) -> str:
    docs = []
    for i in range(count):
        request = {"name": "g", "exactly": {"deviceClassName": "gpu", "count": 1 + i % 2}}
        docs.append({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": f"urgent-{i}", "namespace": "prod"}, "spec": {"devices": {"requests": [request]}},
        })  # fmt: skip
    return yaml.safe_dump_all(docs)


def run(nodes: int, count: int, params: SolveParams, preempt: bool) -> tuple[float, int, int, str]:
    started = time.perf_counter()
    inputs = read_inputs([(cluster(nodes), "cluster.yaml"), (running(nodes), "running.yaml")],
                         [(pending(count), "pending.yaml")], (POLICY, "policy.yaml"))  # fmt: skip
    compiled = inputs.compile(Disruption(preempt=preempt))
    solution = solve(compiled.problem, "optimal", params)
    seconds = time.perf_counter() - started
    assert verify(compiled.problem, solution) == [], "the verifier refused the plan"
    return seconds, len(solution.placements), len(solution.preempted), solution.status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--pending", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    params = SolveParams(time_limit_s=args.time_limit, workers=1, seed=0, explain=False)
    print(
        "| nodes | GPUs held | pending | preempt: median s | placed | preempted | status | no preempt: median s "
        "| placed | ratio |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for nodes in args.sizes:
        with_p = [run(nodes, args.pending, params, True) for _ in range(args.repeat)]
        without = [run(nodes, args.pending, params, False) for _ in range(args.repeat)]
        a, b = statistics.median(r[0] for r in with_p), statistics.median(r[0] for r in without)
        print(f"| {nodes} | {nodes * 8} | {args.pending} | {a:.2f} | {with_p[0][1]} | {with_p[0][2]} | "
              f"{with_p[0][3]} | {b:.2f} | {without[0][1]} | {a / b:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
