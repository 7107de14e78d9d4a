"""How much better could `online` place shares on `default`, if it knew more? (the #4 target question)

Each variant is `online` with one thing changed, replayed on the same seeds; next to its allocation
at 130% the script gives the ceiling (solver/simulate/bound.py) for *exactly the pods it placed*:
the most any schedule could allocate that places those pods (and any others). That splits a
strategy's distance to the 95% ceiling (`simulate --ceiling`) in two: which pods it placed
(admission: e.g. an 810 that takes an empty GPU once the cluster is nearly full) and how it packed
them (the gap between its result and this ceiling).

Variants:
- `online`: as shipped (fill patterns learned from the shares seen so far);
- `oracle-cover`: the fill patterns of the optimal packing of *every* share of the seed's arrival
  sequence, known from the first pod (perfect knowledge of the future share mix);
- `oracle-maxpack`: the patterns of the hindsight optimum itself: the ceiling's LP
  (solver/simulate/bound.py) when every placeable pod arriving before 95% must be placed and the
  later ones may be;
- `commit`: learned patterns, but each GPU is committed to one pattern when its first share lands,
  and a share that fits no open slot opens a GPU for the pattern furthest below its LP proportion
  (realizes the LP's pattern mix, not just its patterns).

`--binpack` instead packs only the shares that arrive before 95%, in arrival order, as plain bin
packing (no nodes, CPU or whole-GPU pods), with the patterns of their own optimal packing known from
the start: a share joins the fullest GPU it keeps on track, else opens one. It prints the GPUs used
against the LP, and how much of the excess is room left in GPUs whose pattern is still incomplete.

Usage (from the repo root, venv active):
    python benchmarks/openb_online_limits.py --seeds 42-51 --jobs 2
    python benchmarks/openb_online_limits.py --seeds 42-51 --binpack
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from datafiles import data_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VARIANTS = ("online", "oracle-cover", "oracle-maxpack", "commit")
MILLI = 1000


def _within(part: tuple[int, ...], whole: tuple[int, ...]) -> bool:
    have = Counter(whole)
    return all(have[s] >= n for s, n in Counter(part).items())


def _make(variant: str) -> Any:
    from gpupolicy.solver.simulate.bound import arrived_before, ceiling, placeable
    from gpupolicy.solver.simulate.online import Online
    from gpupolicy.solver.simulate.patterns import OnTrack, optimal_packing

    class Oracle(Online):
        def reset(self, ctx: Any) -> None:
            super().reset(ctx)
            p = self.pods
            if variant == "oracle-cover":
                counts: Counter[int] = Counter(
                    int(p.milli[i]) for i in range(p.count) if p.num_gpu[i] == 1 and p.milli[i] < MILLI
                )
                self.fixed = OnTrack(optimal_packing(counts))
                return
            nodes = self.cluster.nodes
            forced = arrived_before(p, nodes.total_gpu_milli, 95.0) & placeable(nodes, p)
            self.fixed = OnTrack(ceiling(nodes, p, forced).fill)

        def _learn_patterns(self, milli: int) -> None:
            self.on_track = self.fixed

    class Commit(Online):
        def reset(self, ctx: Any) -> None:
            super().reset(ctx)
            self.plan: dict[tuple[int, int], tuple[int, ...] | None] = {}
            self.x: dict[tuple[int, ...], float] = {}
            self.intent: dict[tuple[int, int], tuple[int, ...] | None] = {}

        def _learn_patterns(self, milli: int) -> None:
            self.shares_seen[milli] += 1
            n = sum(self.shares_seen.values())
            if n >= self.next_patterns:
                many = len(self.shares_seen) > self.config.patterns_sizes
                self.x = {} if many else optimal_packing(self.shares_seen)
                self.on_track = OnTrack(self.x)
                self.next_patterns = n + min(n, self.config.refresh_every)
                for key, p in list(self.plan.items()):  # recommit GPUs whose pattern left the support
                    if p not in self.x:
                        self.plan[key] = self._pattern_for(self.contents.get(key, ()))

        def _pattern_for(self, contents: tuple[int, ...]) -> tuple[int, ...] | None:
            fits = [p for p in self.x if _within(contents, p)]
            if not fits:
                return None
            made = Counter(self.plan.values())
            total, opened = sum(self.x.values()), sum(made[p] for p in self.x)
            return max(fits, key=lambda p: self.x[p] / total * (opened + 1) - made[p])

        def _keep_on_track(self, cand: Any, milli: int) -> Any:
            gpu = np.argmax(cand.use, axis=1)
            keys = [(int(n), int(g)) for n, g in zip(cand.node, gpu, strict=True)]
            held = [self.contents.get(k, ()) for k in keys]
            plans = [self.plan.get(k) for k in keys]
            slot = np.array([bool(c) and p is not None and _within((*c, milli), p) for p, c in zip(plans, held)])
            opening = self._pattern_for((milli,))
            if slot.any():
                self.intent = {k: self.plan[k] for k, ok in zip(keys, slot) if ok}
                return slot
            empty = np.array([not c for c in held])
            if empty.any() and opening is not None:
                self.intent = {k: opening for k, ok in zip(keys, empty) if ok}
                return empty
            self.intent = {}
            return super()._keep_on_track(cand, milli)

        def commit(self, i: int, placement: Any) -> None:
            super().commit(i, placement)
            if i >= 0 and placement.gpus and self.pods.num_gpu[i] == 1 and self.pods.milli[i] < MILLI:
                key = (placement.node, placement.gpus[0])
                self.plan[key] = self.intent.get(key) or self._pattern_for(self.contents[key])

    if variant == "online":
        return Online()
    return Commit() if variant == "commit" else Oracle()


def _one(job: tuple[str, int]) -> tuple[str, int, float, float]:
    from gpupolicy.solver.simulate.replay import Replay
    from gpupolicy.solver.simulate.trace import parse_nodes, parse_pods

    variant, seed = job
    nodes = parse_nodes(data_file("openb/openb_node_list_gpu_node.csv").read_text(), "openb_node_list_gpu_node.csv")
    pods = parse_pods(data_file("openb/openb_pod_list_default.csv").read_text(), nodes.models, "default")
    result = Replay(nodes, pods).run(_make(variant), seed, ceiling=1000.0)
    return variant, seed, result.at_130, float(result.ceiling)


def _binpack(seeds: list[int]) -> None:
    from gpupolicy.solver.simulate.bound import arrived_before
    from gpupolicy.solver.simulate.patterns import OnTrack, optimal_packing
    from gpupolicy.solver.simulate.protocol import arrival_order
    from gpupolicy.solver.simulate.trace import parse_nodes, parse_pods

    nodes = parse_nodes(data_file("openb/openb_node_list_gpu_node.csv").read_text(), "openb_node_list_gpu_node.csv")
    pods = parse_pods(data_file("openb/openb_pod_list_default.csv").read_text(), nodes.models, "default")
    print("| seed | GPUs used | LP | excess | room in GPUs whose pattern is incomplete | patterns |")
    print("|---|---|---|---|---|---|")
    for seed in seeds:
        arrivals = pods.take(arrival_order(pods, nodes.total_gpu_milli, seed, 1.3))
        early = arrived_before(arrivals, nodes.total_gpu_milli, 95.0)
        shares = [
            int(arrivals.milli[i])
            for i in range(arrivals.count)
            if early[i] and arrivals.num_gpu[i] == 1 and arrivals.milli[i] < MILLI
        ]
        x = optimal_packing(Counter(shares))
        track = OnTrack(x)
        gpus: list[tuple[int, ...]] = []
        for s in shares:
            ok = [k for k, held in enumerate(gpus) if tuple(sorted((*held, s))) in track]
            if ok:
                k = max(ok, key=lambda k: sum(gpus[k]))
                gpus[k] = tuple(sorted((*gpus[k], s)))
            else:
                gpus.append((s,))
        lp = sum(x.values())
        room = sum(MILLI - sum(held) for held in gpus if held not in x) / MILLI
        print(f"| {seed} | {len(gpus)} | {lp:.1f} | {len(gpus) - lp:.1f} | {room:.1f} | {len(x)} |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="42-51")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--binpack", action="store_true", help="plain bin packing of the shares (see above)")
    args = ap.parse_args()
    from gpupolicy.solver.simulate.run import parse_seeds

    if args.binpack:
        _binpack(parse_seeds(args.seeds))
        return 0

    variants = args.variants.split(",")
    jobs = [(v, s) for v in variants for s in parse_seeds(args.seeds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        done = list(pool.map(_one, jobs))
    base = {s: a for v, s, a, _ in done if v == "online"}
    print("| variant | allocation at 130% | − online (same seeds) | ceiling for the pods it placed | packing loss |")
    print("|---|---|---|---|---|")
    for v in variants:
        rows = [(s, a, c) for w, s, a, c in done if w == v]
        alloc = np.array([a for _, a, _ in rows])
        ceil = np.array([c for _, _, c in rows])
        diff = np.array([a - base[s] for s, a, _ in rows if s in base])
        sd = np.std(alloc, ddof=1) if len(alloc) > 1 else 0.0
        delta = f"{np.mean(diff):+.3f}" if len(diff) else "-"
        print(
            f"| {v} | {np.mean(alloc):.2f} ± {sd:.2f} | {delta} | {np.mean(ceil):.2f} | {np.mean(ceil - alloc):.2f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
