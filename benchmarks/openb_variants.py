"""Strategies on openb variants nobody tuned on: more CPU-only pods, more sharing, more GPU-model
constraints, more multi-GPU pods. The variants are derived from the shipped `default` trace here
(the FGD authors' own variant files are not shipped in data/), with a fixed random stream:

- cpu200 / cpu250: CPU-only pods resampled from the trace's own CPU-only pods until they are 20% / 25%
  of all pods (default: 13%);
- gpushare80: single whole-GPU pods turned into shares (GPU milli drawn from the trace's shares)
  until 80% of GPU pods share a GPU (default: 44%);
- gpuspec33: a third of the GPU pods get a `gpu_spec` drawn from the `gpuspec10` trace's specs;
- multigpu50: half of the whole-GPU pods ask for 2, 4 or 8 GPUs (5:3:2), CPU scaled with the
  count up to 64 cores.

Usage (from the repo root, venv active):
    python benchmarks/openb_variants.py --seeds 42-44 --strategies fgd,online,best-fit
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from datafiles import data_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
Row = dict[str, str]


def _cpu(frac: float) -> Callable[[list[Row], random.Random], list[Row]]:
    def make(rows: list[Row], rng: random.Random) -> list[Row]:
        cpu = [r for r in rows if int(r["num_gpu"]) == 0]
        gpu = len(rows) - len(cpu)
        want = int(frac * gpu / (1 - frac))
        return rows + [dict(rng.choice(cpu), name=f"extra-cpu-{j:05d}") for j in range(max(0, want - len(cpu)))]

    return make


def _gpushare(frac: float) -> Callable[[list[Row], random.Random], list[Row]]:
    def make(rows: list[Row], rng: random.Random) -> list[Row]:
        gpu = [r for r in rows if int(r["num_gpu"]) > 0]
        shares = [int(r["gpu_milli"]) for r in gpu if int(r["gpu_milli"]) < 1000]
        whole = [r for r in gpu if int(r["gpu_milli"]) == 1000 and int(r["num_gpu"]) == 1]
        for r in rng.sample(whole, min(max(0, int(frac * len(gpu)) - len(shares)), len(whole))):
            r["gpu_milli"] = str(rng.choice(shares))
        return rows

    return make


def _gpuspec(frac: float) -> Callable[[list[Row], random.Random], list[Row]]:
    def make(rows: list[Row], rng: random.Random) -> list[Row]:
        with open(data_file("openb/openb_pod_list_gpuspec10.csv"), newline="") as f:
            specs = [r["gpu_spec"] for r in csv.DictReader(f) if r["gpu_spec"]]
        gpu = [r for r in rows if int(r["num_gpu"]) > 0]
        for r in rng.sample(gpu, int(frac * len(gpu))):
            r["gpu_spec"] = rng.choice(specs)
        return rows

    return make


def _multigpu(frac: float) -> Callable[[list[Row], random.Random], list[Row]]:
    def make(rows: list[Row], rng: random.Random) -> list[Row]:
        whole = [r for r in rows if int(r["num_gpu"]) >= 1 and int(r["gpu_milli"]) == 1000]
        for r in rng.sample(whole, int(frac * len(whole))):
            k = rng.choices([2, 4, 8], [5, 3, 2])[0]
            r["num_gpu"], r["cpu_milli"] = str(k), str(min(int(r["cpu_milli"]) * k, 64000))
        return rows

    return make


VARIANTS: dict[str, Callable[[list[Row], random.Random], list[Row]]] = {
    "cpu200": _cpu(0.20),
    "cpu250": _cpu(0.25),
    "gpushare80": _gpushare(0.80),
    "gpuspec33": _gpuspec(0.33),
    "multigpu50": _multigpu(0.50),
}


def write_variants(out: Path, seed: int = 7) -> dict[str, Path]:
    with open(data_file("openb/openb_pod_list_default.csv"), newline="") as f:
        reader = csv.DictReader(f)
        fields, base = list(reader.fieldnames or []), list(reader)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, make in VARIANTS.items():
        rows = make([dict(r) for r in base], random.Random(f"{seed}-{name}"))
        path = out / f"openb_pod_list_{name}.csv"
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        paths[name] = path
    return paths


def main() -> int:
    from gpupolicy.solver.simulate.replay import Replay
    from gpupolicy.solver.simulate.run import parse_seeds, run
    from gpupolicy.solver.simulate.trace import parse_nodes, parse_pods

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="42-44")
    ap.add_argument("--strategies", default="fgd,online,best-fit")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", type=Path, default=Path("/tmp/gpupolicy-variants"))
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    paths = write_variants(args.out)
    nodes = parse_nodes(data_file("openb/openb_node_list_gpu_node.csv").read_text(), "openb_node_list_gpu_node.csv")
    print("| variant | strategy | alloc @130% (mean ± sd) | per seed | failed CPU-only pods / seed | s/seed |")
    print("|---|---|---|---|---|---|")
    for name in args.variants.split(","):
        pods = parse_pods(paths[name].read_text(), nodes.models, paths[name].name)
        replay = Replay(nodes, pods)
        for strategy in args.strategies.split(","):
            start = time.perf_counter()
            summary = run(replay, strategy, seeds, name)
            at = np.array(summary.at_130)
            sd = at.std(ddof=1) if len(at) > 1 else 0.0
            cpu_failed = np.mean([r.failed.get("cpu", 0) for r in summary.results])
            per = ", ".join(f"{x:.2f}" for x in at)
            secs = (time.perf_counter() - start) / len(seeds)
            row = f"| {name} | {strategy} | {at.mean():.2f} ± {sd:.2f} | {per} | {cpu_failed:.1f} | {secs:.1f} |"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
