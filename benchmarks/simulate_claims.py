"""``simulate --inventory`` on generated clusters: whole GPUs and dynamic MIG, every strategy.

Usage (from the repo root, venv active):
    python benchmarks/simulate_claims.py [--nodes 40] [--claims 120] [--mig-nodes 4] [--mig-claims 80]

Writes nothing; prints one Markdown row per (scenario, strategy): claims placed, GPUs
fully/partly used/idle, final allocation %, seconds, per-solve median/p99 ms.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POLICY = """apiVersion: gpupolicy.dev/v1alpha1
kind: GpuPolicy
metadata:
  name: bench
spec:
  deviceClasses:
  - name: gpu.gpupolicy.dev
    selectors:
    - cel:
        expression: device.attributes["gpu.gpupolicy.dev"].type == "gpu"
  - name: mig.gpupolicy.dev
    selectors:
    - cel:
        expression: device.attributes["gpu.gpupolicy.dev"].type == "mig"
  sharing:
  - name: h100-dynamic
    mig:
      dynamic: true
      profiles: [1g.10gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb]
  objective: {objective}
"""

CLUSTER = """apiVersion: gpupolicy.dev/v1alpha1
kind: ClusterDescription
metadata:
  name: bench
spec:
  nodes:
  - namePrefix: node
    count: {nodes}
    gpus: {{model: H100-80GB, count: 8}}
{mig}"""


def claim(i: int, body: str) -> str:
    return (
        "apiVersion: resource.k8s.io/v1\nkind: ResourceClaim\n"
        f"metadata:\n  name: c{i:04d}\n  namespace: default\n"
        f"spec:\n  devices:\n    requests:\n    - name: r\n      exactly:\n{body}"
    )


def whole_gpu_claims(n: int, rng: random.Random) -> str:
    docs = []
    for i in range(n):
        count = rng.choice([1, 1, 1, 2, 4, 8])
        docs.append(claim(i, f"        deviceClassName: gpu.gpupolicy.dev\n        count: {count}\n"))
    return "---\n".join(docs)


def mig_claims(n: int, rng: random.Random) -> str:
    docs = []
    for i in range(n):
        profile = rng.choice(["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb", "3g.40gb", "4g.40gb", "7g.80gb"])
        sel = f'device.attributes["gpu.gpupolicy.dev"].profile == "{profile}"'
        body = (
            "        deviceClassName: mig.gpupolicy.dev\n        selectors:\n        - cel:\n"
            f"            expression: '{sel}'\n"
        )
        docs.append(claim(i, body))
    return "---\n".join(docs)


def run(name: str, policy: str, cluster: str, claims: str, strategies: list[str], limit: float) -> None:
    from gpupolicy.solver.compile import compile_problem
    from gpupolicy.solver.inputs import read_inputs
    from gpupolicy.solver.result import SolveParams
    from gpupolicy.solver.simulate.claims import replay_claims

    inputs = read_inputs([(cluster, "cluster.yaml")], [(claims, "claims.yaml")], (policy, "policy.yaml"))
    compiled = compile_problem(inputs.slices, inputs.classes, inputs.pending, nodes=inputs.nodes, policy=inputs.policy)
    problem = compiled.problem
    params = SolveParams(time_limit_s=limit, workers=1, seed=0, explain=False)
    for strategy in strategies:
        started = time.perf_counter()
        r = replay_claims(problem, strategy, trace=name, params=params, window=16)
        d = r.to_json()
        ms = d.get("decision_ms") or {"median": "—", "p99": "—"}
        assert isinstance(ms, dict)
        g = r.gpus
        print(
            f"| {name} | {strategy} | {len(r.placements)} / {r.claims} | {g.full} / {g.partial} / {g.idle} |"
            f" {r.curve[-1]:.2f} | {time.perf_counter() - started:.1f} | {ms['median']} / {ms['p99']} |"
            f" {len(r.violations)} |",
            flush=True,
        )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=40)
    ap.add_argument("--claims", type=int, default=120)
    ap.add_argument("--mig-nodes", type=int, default=4)
    ap.add_argument("--mig-claims", type=int, default=80)
    ap.add_argument("--time-limit", type=float, default=5.0)
    ap.add_argument("--strategies", default="first-fit,best-fit,online,batch")
    args = ap.parse_args()
    strategies = args.strategies.split(",")
    print(
        "| scenario | strategy | claims placed | GPUs full / partly / idle | alloc % | s"
        " | solve median / p99 ms | verifier violations |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rng = random.Random(1)
    run(
        f"whole GPUs, {args.nodes} nodes x 8",
        POLICY.format(objective="pack"),
        CLUSTER.format(nodes=args.nodes, mig=""),
        whole_gpu_claims(args.claims, rng),
        strategies,
        args.time_limit,
    )
    run(
        f"dynamic MIG, {args.mig_nodes} nodes x 8",
        POLICY.format(objective="least-fragmentation"),
        CLUSTER.format(nodes=args.mig_nodes, mig="    mig: dynamic\n"),
        mig_claims(args.mig_claims, rng),
        strategies,
        args.time_limit,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
