"""The proven ceiling of allocation at 130% on the openb traces (see solver/simulate/bound.py).

For each trace, seed and point X (% of GPU capacity arrived): the most GPU milli any schedule
could have in use at the end if it places every pod that arrived before X (except pods no node
could host even empty: `gpuspec10` has two 8-GPU G2 pods asking for more CPU than a G2 node has). On `default`, FGD
places every pod until 93-95% arrived, so the ceiling at those points caps what it, or any
rule that does as well, could reach (`simulate --ceiling` gives the same bound for the pods a
given strategy placed). The bound ignores CPU,
memory, node boundaries and arrival order, so the true ceiling is lower.

Usage (from the repo root, venv active):
    python benchmarks/openb_ceiling.py --seeds 42-51 --at 90,93,95
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from datafiles import data_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TRACES = ("default", "cpu050", "gpushare40", "gpuspec10", "multigpu20")


def _cell(values: list[float]) -> str:
    kept = [v for v in values if not np.isnan(v)]
    if not kept:
        return "none: no schedule places them all"
    sd = np.std(kept, ddof=1) if len(kept) > 1 else 0.0
    text = f"{np.mean(kept):.2f} ± {sd:.2f}"
    if len(kept) < len(values):
        text += f" ({len(values) - len(kept)} seeds: no schedule places them all)"
    return text


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", default=",".join(TRACES))
    ap.add_argument("--seeds", default="42-51")
    ap.add_argument("--at", default="90,93,95", help="arrived %% before which every pod is placed")
    args = ap.parse_args()
    from gpupolicy.solver.simulate.bound import arrived_before, ceiling, placeable
    from gpupolicy.solver.simulate.protocol import arrival_order
    from gpupolicy.solver.simulate.run import parse_seeds
    from gpupolicy.solver.simulate.trace import parse_nodes, parse_pods

    nodes = parse_nodes(data_file("openb/openb_node_list_gpu_node.csv").read_text(), "openb_node_list_gpu_node.csv")
    points = [float(x) for x in args.at.split(",")]
    seeds = parse_seeds(args.seeds)
    print(
        "| trace | "
        + " | ".join(f"ceiling if every placeable pod before {x:g}% is placed" for x in points)
        + " | s/bound |"
    )
    print("|---|" + "---|" * (len(points) + 1))
    for trace in args.traces.split(","):
        pods = parse_pods(data_file(f"openb/openb_pod_list_{trace}.csv").read_text(), nodes.models, trace)
        values: dict[float, list[float]] = {x: [] for x in points}
        seconds: list[float] = []
        for seed in seeds:
            arrivals = pods.take(arrival_order(pods, nodes.total_gpu_milli, seed, 1.3))
            for x in points:
                forced = arrived_before(arrivals, nodes.total_gpu_milli, x) & placeable(nodes, arrivals)
                bound = ceiling(nodes, arrivals, forced)
                values[x].append(bound.allocation)
                seconds.append(bound.seconds)
        cells = [_cell(v) for v in values.values()]
        print(f"| {trace} | " + " | ".join(cells) + f" | {np.median(seconds):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
