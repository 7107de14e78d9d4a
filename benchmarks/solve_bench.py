"""Solve benchmark: time against cluster size, and placement quality against first-fit and best-fit.

    python benchmarks/solve_bench.py [--sizes 100 1000 5000] [--time-limit 30] [--workers 2] [--quick]

Part 1 (scale): N nodes × 8 whole GPUs (a cluster description) and 5 × N pending claims from four
ResourceClaimTemplates (1, 2, 4 and 8 GPUs, replicas in the ``gpupolicy.dev/replicas`` annotation),
run through the whole path: cluster → ResourceSlices → compile (CEL) → strategy → verifier.
Part 2 (MIG): dynamic-MIG H100 nodes and a random mix of 1g/2g/3g/4g/7g claims (the full Boolean model).
Part 3 (examples): every ``examples/*`` scenario with each strategy.
Prints a Markdown report on stdout.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpupolicy.solver.compile import compile_problem  # noqa: E402
from gpupolicy.solver.inputs import read_inputs  # noqa: E402
from gpupolicy.solver.report import summarize  # noqa: E402
from gpupolicy.solver.result import SolveParams  # noqa: E402
from gpupolicy.solver.solve import solve  # noqa: E402
from gpupolicy.solver.verify import verify  # noqa: E402

DRIVER = "gpu.gpupolicy.dev"
CLASSES = f"""apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {{name: gpu}}
spec:
  selectors:
  - cel:
      expression: device.driver == "{DRIVER}" && device.attributes["{DRIVER}"].type == "gpu"
---
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {{name: mig}}
spec:
  selectors:
  - cel:
      expression: device.driver == "{DRIVER}" && device.attributes["{DRIVER}"].type == "mig"
"""


def cluster(nodes: int, mig: str = "disabled") -> str:
    return f"""apiVersion: gpupolicy.dev/v1alpha1
kind: ClusterDescription
metadata: {{name: bench}}
spec:
  nodes:
  - namePrefix: node
    count: {nodes}
    gpus: {{model: H100-80GB, count: 8}}
    mig: {mig}
    cpuMillis: 192000
    memory: 2Ti
"""


def template(name: str, replicas: int, body: str) -> str:
    return f"""apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata:
  name: {name}
  namespace: bench
  annotations: {{gpupolicy.dev/replicas: "{replicas}"}}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly:
{body}
---
"""


def gpu_claims(total: int, seed: int) -> str:
    """Individual ResourceClaims in random arrival order (first-fit sees big and small mixed)."""
    rng = random.Random(seed)
    out = []
    for i in range(total):
        size = rng.choice([1, 1, 1, 2, 2, 4, 8])
        meta = f"metadata: {{name: c{i:05d}-{size}gpu, namespace: bench}}\n"
        request = f"    - name: gpu\n      exactly: {{deviceClassName: gpu, count: {size}}}\n"
        out.append(
            f"apiVersion: resource.k8s.io/v1\nkind: ResourceClaim\n{meta}spec:\n  devices:\n    requests:\n{request}"
        )
    return "---\n".join(out)


def mig_claims(total: int, seed: int) -> str:
    rng = random.Random(seed)
    profiles = [rng.choice(["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]) for _ in range(total)]
    out = ""
    for profile in sorted(set(profiles)):
        selector = f'device.attributes["{DRIVER}"].profile == "{profile}"'
        body = "          deviceClassName: mig\n          selectors:\n          - cel:\n"
        body += f"              expression: '{selector}'"
        out += template(f"mig-{profile.replace('.', '-')}", profiles.count(profile), body)
    return out


def run(name: str, inventory: str, claims: str, strategies: list[str], params: SolveParams) -> list[str]:
    started = time.perf_counter()
    inputs = read_inputs([(inventory, "cluster.yaml"), (CLASSES, "classes.yaml")], [(claims, "claims.yaml")])
    compiled = compile_problem(inputs.slices, inputs.classes, inputs.pending, nodes=inputs.nodes)
    compile_s = time.perf_counter() - started
    problem = compiled.problem
    rows = []
    for strategy in strategies:
        solution = solve(problem, strategy, params)
        errors = verify(problem, solution)
        s = summarize(problem, solution)
        rows.append(
            f"| {name} | {len(problem.devices)} | {len(problem.claims)} | {compile_s:.1f} | {strategy} | "
            f"{s.placed} | {s.weight_placed} | {s.full}/{s.partial}/{s.idle} | {s.fragmentation:.2f} | "
            f"{solution.wall_s:.2f} | {solution.status} | {'ok' if not errors else len(errors)} |"
        )
        print(rows[-1], file=sys.stderr)
    return rows


HEADER = [
    "| scenario | devices | claims | compile s | strategy | placed | priority placed | GPUs full/partly/idle "
    "| fragmentation | solve s | status | verified |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
]


def examples(params: SolveParams) -> list[str]:
    rows = []
    for example in sorted((REPO / "examples").glob("*")):
        files = [example / f for f in ("cluster.yaml", "claims.yaml", "policy.yaml")]
        if not all(f.exists() for f in files):
            continue
        texts = [(f.read_text(), str(f.relative_to(REPO))) for f in files]
        inputs = read_inputs([texts[0]], [texts[1]], texts[2])
        compiled = compile_problem(
            inputs.slices, inputs.classes, inputs.pending, nodes=inputs.nodes, policy=inputs.policy
        )
        for strategy in ("optimal", "first-fit", "best-fit"):
            solution = solve(compiled.problem, strategy, params)
            s = summarize(compiled.problem, solution)
            ok = "ok" if not verify(compiled.problem, solution) else "FAIL"
            rows.append(
                f"| {example.name} | {strategy} | {s.placed}/{s.claims} | {s.weight_placed}/{s.weight_total} | "
                f"{s.full}/{s.partial}/{s.idle} | {s.fragmentation:.2f} | {solution.wall_s:.2f} | {ok} |"
            )
    return [
        "| example | strategy | placed | priority placed | GPUs full/partly/idle | fragmentation | solve s "
        "| verified |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--mig-nodes", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="sizes 20 and 100 only, 10 s limit")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.mig_nodes, args.time_limit = [20, 100], [2], 10.0
    params = SolveParams(time_limit_s=args.time_limit, workers=args.workers, seed=args.seed, explain=False)
    print(f"time limit {args.time_limit} s, {args.workers} workers, seed {args.seed}\n")
    print("## Scale: N nodes × 8 whole GPUs, 5 × N claims of 1/2/4/8 GPUs\n")
    print("\n".join(HEADER))
    for n in args.sizes:
        strategies = ["optimal", "first-fit", "best-fit"] if n <= 1000 else ["optimal", "first-fit"]
        for row in run(f"{n} nodes", cluster(n), gpu_claims(5 * n, args.seed), strategies, params):
            print(row, flush=True)
    print("\n## Dynamic MIG: N nodes × 8 H100 (dynamic MIG), 20 × N claims of mixed profiles (1g…7g)\n")
    print("\n".join(HEADER))
    for n in args.mig_nodes:
        claims = mig_claims(20 * n, args.seed)
        for row in run(f"{n} MIG nodes", cluster(n, "dynamic"), claims, ["optimal", "first-fit", "best-fit"], params):
            print(row, flush=True)
    print("\n## Examples\n")
    print("\n".join(examples(SolveParams(time_limit_s=10, workers=1, seed=args.seed, explain=False))))


if __name__ == "__main__":
    main()
