"""Strategies x openb traces x seeds under the FGD protocol -> benchmarks/results/simulate.md + PNGs.

Usage (from the repo root, venv active):
    python benchmarks/simulate_openb.py --seeds 42-51 --jobs 1
    python benchmarks/simulate_openb.py --traces default --strategies fgd,online --seeds 42,43

Each (trace, strategy) summary is cached as JSON under --cache (default /tmp/gpupolicy-simulate),
so a rerun only computes what is missing; --report-only rewrites the Markdown and plots.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from datafiles import data_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TRACES = ("default", "cpu050", "gpushare40", "gpuspec10", "multigpu20")
STRATEGIES = ("random", "first-fit", "best-fit", "gpu-packing", "fgd", "online")
PUBLISHED = {"random": "01-Random", "gpu-packing": "04-GpuPacking", "best-fit": "05-BestFit", "fgd": "06-FGD"}


def published() -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    with open(data_file("fgd/fgd_allo.csv"), newline="") as f:
        for row in csv.DictReader(f):
            trace = row["workload"].removeprefix("openb_pod_list_")
            out.setdefault((trace, row["sc_policy"]), []).append(float(row["130"]))
    return out


def run_one(trace: str, strategy: str, seeds: list[int], cache: Path) -> dict[str, object]:
    from gpupolicy.solver.simulate.replay import Replay
    from gpupolicy.solver.simulate.run import run
    from gpupolicy.solver.simulate.trace import parse_nodes, parse_pods

    nodes = parse_nodes(data_file("openb/openb_node_list_gpu_node.csv").read_text(), "openb_node_list_gpu_node.csv")
    pods = parse_pods(data_file(f"openb/openb_pod_list_{trace}.csv").read_text(), nodes.models, trace)
    start = time.perf_counter()
    doc = run(Replay(nodes, pods), strategy, seeds, trace, ceiling=None if strategy == "batch" else 95.0).to_json()
    doc["wall_seconds"] = round(time.perf_counter() - start, 1)
    (cache / f"{trace}__{strategy}.json").write_text(json.dumps(doc))
    print(f"{trace} {strategy}: {doc['allocation_at_130']} ({doc['wall_seconds']} s)", flush=True)
    return doc


def load(cache: Path) -> dict[tuple[str, str], dict[str, object]]:
    docs = {}
    for path in sorted(cache.glob("*__*.json")):
        trace, strategy = path.stem.split("__")
        docs[trace, strategy] = json.loads(path.read_text())
    return docs


def fmt(values: list[float]) -> str:
    a = np.array(values)
    sd = a.std(ddof=1) if len(a) > 1 else 0.0
    return f"{a.mean():.2f} ± {sd:.2f}"


def _opt(doc: dict[str, object], key: str) -> str:
    value = doc.get(key)
    return "—" if value is None else f"{float(str(value)):.2f}"


def report(docs: dict[tuple[str, str], dict[str, object]], out: Path, plots: Path) -> None:
    pub = published()
    lines = [
        "| trace | strategy | ours: alloc @130% (mean ± sd) | seeds | published (mean ± sd) | ours − published |"
        " failed pods / seed (CPU-only) | s/seed | decision median / p99 ms | first GPU failure, % arrived |"
        " ceiling % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for trace in TRACES:
        for strategy in (*STRATEGIES, "batch"):
            d = docs.get((trace, strategy))
            if d is None:
                continue
            per_seed = d["allocation_at_130_per_seed"]
            assert isinstance(per_seed, list)
            ours = [float(x) for x in per_seed]
            p = pub.get((trace, PUBLISHED.get(strategy, "")), [])
            diff = f"{np.mean(ours) - np.mean(p):+.2f}" if p else "—"
            n = len(ours)
            dm, failed = d["decision_ms"], d["failed_pods"]
            assert isinstance(dm, dict) and isinstance(failed, dict)
            lost = f"{sum(failed.values()):.0f} ({failed.get('cpu', 0):.1f})"
            lines.append(
                f"| {trace} | {strategy} | {fmt(ours)} | {n} | {fmt(p) if p else '—'} | {diff} | {lost} |"
                f" {float(str(d['seconds'])) / n:.1f} | {dm['median']:.3f} / {dm['p99']:.3f} |"
                f" {_opt(d, 'first_gpu_failure_pct')} | {_opt(d, 'ceiling_at_130')} |"
            )
    out.write_text("\n".join(lines) + "\n")
    from gpupolicy.plugin.cli.simulate import _plot

    for trace in TRACES:
        present = [docs[trace, s] for s in (*STRATEGIES, "batch") if (trace, s) in docs]
        if present:
            _plot(present, plots / f"simulate_{trace}.png")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", default=",".join(TRACES))
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--seeds", default="42-51")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/gpupolicy-simulate"))
    ap.add_argument("--table", type=Path, default=ROOT / "benchmarks" / "results" / "simulate_table.md")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    from gpupolicy.solver.simulate.run import parse_seeds

    args.cache.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        seeds = parse_seeds(args.seeds)
        todo = [
            (t, s)
            for t in args.traces.split(",")
            for s in args.strategies.split(",")
            if not (args.cache / f"{t}__{s}.json").exists()
        ]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for fut in [pool.submit(run_one, t, s, seeds, args.cache) for t, s in todo]:
                fut.result()
    report(load(args.cache), args.table, ROOT / "benchmarks" / "results")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
