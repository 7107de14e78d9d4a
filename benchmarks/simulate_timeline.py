"""The timeline replay (``gpupolicy simulate --timeline``) swept over ``--load`` on the shared openb traces.

For each trace and load: the time-averaged allocation, the waits (mean, p99), the share of pods that waited
at all and the pods never placed, for ``first-fit``, ``fgd`` and ``online``; then where the cluster
saturates (the lowest load at which at least 1 % of the pods wait under ``first-fit``) and how much shorter
the waits are with ``online`` than with the others at the same load. Prints a Markdown report.

Usage (from the repo root, venv active):
    python benchmarks/simulate_timeline.py --loads 1000,3000,10000 --repeat 2 --seeds 42
    python benchmarks/simulate_timeline.py --traces default --strategies first-fit,online --loads 10000

``multigpu20`` ships without the time columns (the upstream file has only the resource columns): it is
reported as not replayable, with the diagnostic the CLI prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from datafiles import data_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TRACES = ("default", "cpu050", "gpushare40", "gpuspec10", "multigpu20")
STRATEGIES = ("first-fit", "fgd", "online")


def _measure(
    trace: str, loads: list[float], repeat: int, strategies: list[str], seeds: list[int]
) -> list[dict[str, object]]:
    from gpupolicy.policy.errors import DiagnosticError
    from gpupolicy.solver.simulate.timeline import workload
    from gpupolicy.solver.simulate.timeline_run import run_timeline, summarize
    from gpupolicy.solver.simulate.times import parse_times
    from gpupolicy.solver.simulate.trace import parse_nodes, parse_pods

    nodes_path = data_file("openb/openb_node_list_gpu_node.csv")
    pods_path = data_file(f"openb/openb_pod_list_{trace}.csv")
    nodes = parse_nodes(nodes_path.read_text(), str(nodes_path))
    text = pods_path.read_text()
    pods = parse_pods(text, nodes.models, str(pods_path))
    try:
        times = parse_times(text, f"openb_pod_list_{trace}.csv")
    except DiagnosticError as err:
        return [{"trace": trace, "error": str(err.diagnostics[0])}]
    rows: list[dict[str, object]] = []
    for load in loads:
        work = workload(pods, times, load, repeat)
        for strategy in strategies:
            start = time.process_time()
            results = run_timeline(nodes, work, strategy, seeds, typical_pods=pods)
            doc = summarize(results)
            waited = float(np.mean([np.mean(r.wait[~np.isnan(r.wait)] > 0) for r in results]) * 100)
            peak = float(np.mean([r.used.max() / r.capacity * 100 for r in results]))
            rows.append(
                {
                    "trace": trace,
                    "load": load,
                    "strategy": strategy,
                    "waited_pct": waited,
                    "peak": peak,
                    "cpu_s": time.process_time() - start,
                    **doc,
                }
            )
            print(
                f"{trace} load {load:g} {strategy}: {time.process_time() - start:.1f} s CPU",
                file=sys.stderr,
                flush=True,
            )
    return rows


def _f(x: object, digits: int = 1) -> str:
    return "-" if x is None else f"{float(str(x)):.{digits}f}"


def report(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    out = [
        f"`python benchmarks/simulate_timeline.py --traces {','.join(args.traces)} --strategies"
        f" {','.join(args.strategies)} --loads {args.loads} --repeat {args.repeat} --seeds {args.seeds}`",
        "",
        "| trace | load | strategy | alloc % (mean over the arrivals) | peak alloc % | pods that waited %"
        " | wait mean s | wait p99 s | never placed | queue max | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['trace']} | - | - | not replayable: `{r['error']}` | | | | | | | |")
            continue
        out.append(
            f"| {r['trace']} | {float(str(r['load'])):g} | {r['strategy']} | {_f(r['allocation_mean'], 2)}"
            f" | {_f(r['peak'])} | {_f(r['waited_pct'], 2)} | {_f(r['wait_mean_s'], 2)} | {_f(r['wait_p99_s'])}"
            f" | {_f(r['never_placed'], 0)} | {_f(r['queue_max'], 0)} | {_f(r['cpu_s'])} |"
        )
    out += [
        "",
        "Saturation (lowest load where >= 1 % of the pods wait under first-fit) and waits of online vs the others:",
        "",
    ]
    for trace in dict.fromkeys(str(r["trace"]) for r in rows):
        mine = [r for r in rows if r["trace"] == trace and "error" not in r]
        if not mine:
            continue
        sat = [
            float(str(r["load"])) for r in mine if r["strategy"] == "first-fit" and float(str(r["waited_pct"])) >= 1.0
        ]
        line = f"- `{trace}`: saturates at load {min(sat):g}" if sat else f"- `{trace}`: no saturation in the sweep"
        for load in dict.fromkeys(float(str(r["load"])) for r in mine):
            at = {str(r["strategy"]): r for r in mine if float(str(r["load"])) == load}
            if "online" not in at:
                continue
            parts = []
            for other in ("fgd", "first-fit"):
                if other not in at:
                    continue
                a, b = float(str(at["online"]["wait_mean_s"])), float(str(at[other]["wait_mean_s"]))
                gain = (1 - a / b) * 100 if b > 0 else 0.0
                shorter = f" ({abs(gain):.0f} % {'shorter' if gain >= 0 else 'longer'})" if b > 0 else ""
                parts.append(f"{other} {b:.2f} s{shorter}")
            if parts:
                line += (
                    f"; load {load:g}: online mean wait {float(str(at['online']['wait_mean_s'])):.2f} s vs "
                    + ", ".join(parts)
                )
        out.append(line)
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traces", type=lambda s: s.split(","), default=list(TRACES))
    p.add_argument("--strategies", type=lambda s: s.split(","), default=list(STRATEGIES))
    p.add_argument("--loads", default="1000,3000,10000")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--seeds", default="42")
    args = p.parse_args()
    from gpupolicy.solver.simulate.run import parse_seeds

    loads = [float(x) for x in args.loads.split(",")]
    seeds = parse_seeds(args.seeds)
    rows = [row for trace in args.traces for row in _measure(trace, loads, args.repeat, args.strategies, seeds)]
    print(report(rows, args))


if __name__ == "__main__":
    main()
