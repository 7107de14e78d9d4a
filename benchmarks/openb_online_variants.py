"""The `online` variants we measured and did not keep, replayed on an openb trace.

`online` (gpupolicy.solver.simulate.online) ships one rule. The variants below are that rule with
one or two of its parts replaced, by overriding its hooks; each name says which row of
benchmarks/results/simulate.md it measured ("Measured and dropped earlier", "Changed in the second
session"):

- fgd-cut: FGD's 95% type cut and the first GPU of the chosen node ("first version");
- trace-types: the typical pods of the trace file (FGD's), never relearned;
- memory-in-type: memory is part of a learned pod type;
- weight-by-gpu: type weights by count x GPU milli instead of count;
- exact-best-fit: the exact fragmentation drop (no integer score), best-fit among ties;
- spread: among ties, the choice that leaves the most free (spreading);
- step20 / step40 / step100: the exact drop compared in steps of that many milli;
- tau100 / tau300: every choice within tau milli of the best exact drop ties;
- ties30: every choice within 30 points of the best integer score ties;
- fill / fgd+cpu1 / fgd+cpu0.3: another fragmentation measure ("fill": idle GPU milli left if the node
  were filled with one type; FGD's plus lambda x the GPU milli stranded by CPU or memory);
- small-first / large-first / cpu-rich-first / cpu-poor-first: node order for ties;
- cpu-guard1 / cpu-guard1.5: among ties, avoid leaving less CPU than guard x what the idle GPUs need;
- surplus-headroom3: CPU-only pods go where CPU most exceeds what the idle GPUs will need, headroom
  weight 3 (the second session's first version); mem-surplus: the same with memory;
- no-headroom / headroom0.3 / headroom3: headroom weight 0, 0.3, 3 (kept: 1);
- need0.7 / need1.5: headroom keeps 0.7 / 1.5 x the CPU and memory per idle GPU milli (kept: 1).

Each variant applies to today's `online` (fill patterns, headroom for every pod): the recorded numbers
were measured on the `online` of their session, before the rules that came later, so a rerun gives
other numbers; the comparison with `online` on the same seeds is what the script is for.

Usage (from the repo root, venv active):
    python benchmarks/openb_online_variants.py --seeds 42-43 --variants fill,tau100 --jobs 2
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from datafiles import data_file

from gpupolicy.solver.simulate import frag
from gpupolicy.solver.simulate.candidates import Candidates
from gpupolicy.solver.simulate.online import TIE, Online
from gpupolicy.solver.simulate.protocol import PodTypes, typical_types
from gpupolicy.solver.simulate.strategies import Context

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Knobs:
    """What a variant changes; the defaults are the shipped rule."""

    coverage: float = 1.0  # learned types kept: the most frequent ones covering this share of pods
    learn: bool = True  # False: the trace's typical pods, never relearned
    with_memory: bool = False  # memory is part of the type key
    weight_by: str = "count"  # type weights: count, or gpu (count x GPU milli)
    quantize: bool = True  # FGD's integer score; False: the exact drop (in steps of `step` milli when > 0)
    step: float = 0.0
    tau: float = 0.0  # > 0: every choice within tau of the best score ties
    pack_weight: float = 0.0  # among ties: > 0 the least left (best fit), < 0 the most left (spreading)
    measure: str = "fgd"  # or "fill", "fgd+cpu"
    cpu_weight: float = 1.0  # fgd+cpu: weight of the term for GPU milli that CPU or memory strands
    order: str = "random"  # node order for ties: random (the seed's), small-first, large-first, cpu-rich-first, ...
    gpu_exact: bool = True  # False: the first tied choice in the chosen node
    cpu_guard: float = 0.0  # > 0: among ties, avoid leaving less CPU than guard x the need of idle GPUs
    cpu_surplus: bool = False  # CPU-only pods go where CPU most exceeds what the idle GPUs will need
    mem_surplus: bool = False  # with cpu_surplus: the scarcer of CPU and memory surplus decides
    headroom: float = 1.0  # a pod pays this x the growth of its node's shortfall
    headroom_need: float = 1.0  # the CPU/memory per idle GPU milli kept free, x the average of GPU pods seen


VARIANTS: dict[str, Knobs] = {
    "fgd-cut": Knobs(coverage=0.95, gpu_exact=False),
    "trace-types": Knobs(learn=False),
    "memory-in-type": Knobs(with_memory=True),
    "weight-by-gpu": Knobs(weight_by="gpu"),
    "exact-best-fit": Knobs(quantize=False, pack_weight=1.0),
    "spread": Knobs(pack_weight=-1.0),
    "step20": Knobs(quantize=False, step=20.0),
    "step40": Knobs(quantize=False, step=40.0),
    "step100": Knobs(quantize=False, step=100.0),
    "tau100": Knobs(quantize=False, tau=100.0),
    "tau300": Knobs(quantize=False, tau=300.0),
    "ties30": Knobs(tau=30.0),
    "fill": Knobs(measure="fill"),
    "fgd+cpu1": Knobs(measure="fgd+cpu", cpu_weight=1.0),
    "fgd+cpu0.3": Knobs(measure="fgd+cpu", cpu_weight=0.3),
    "small-first": Knobs(order="small-first"),
    "large-first": Knobs(order="large-first"),
    "cpu-rich-first": Knobs(order="cpu-rich-first"),
    "cpu-poor-first": Knobs(order="cpu-poor-first"),
    "cpu-guard1": Knobs(cpu_guard=1.0),
    "cpu-guard1.5": Knobs(cpu_guard=1.5),
    "surplus-headroom3": Knobs(cpu_surplus=True, headroom=3.0),
    "mem-surplus": Knobs(cpu_surplus=True, mem_surplus=True),
    "no-headroom": Knobs(headroom=0.0),
    "headroom0.3": Knobs(headroom=0.3),
    "headroom3": Knobs(headroom=3.0),
    "need0.7": Knobs(headroom_need=0.7),
    "need1.5": Knobs(headroom_need=1.5),
}


class Variant(Online):
    """`online` with the parts `knobs` names replaced."""

    def __init__(self, knobs: Knobs) -> None:
        super().__init__()
        self.knobs = knobs

    def reset(self, ctx: Context) -> None:
        super().reset(ctx)
        k = self.knobs
        if k.order != "random":
            nd = ctx.cluster.nodes
            ratio = nd.cpu / np.maximum(nd.gpus, 1)
            keys = {"small-first": nd.gpus, "large-first": -nd.gpus, "cpu-rich-first": -ratio, "cpu-poor-first": ratio}
            self.rank = np.lexsort((ctx.rank, keys[k.order])).argsort().astype(np.int64)
        if not k.learn:
            self.set_types(ctx.typical)
            self.next_refresh = sys.maxsize  # never relearn

    def _measure(self, cpu: I64, mem: I64, bits: I64, free: I64) -> F64:
        k = self.knobs
        if k.measure == "fill":
            return frag.fill(cpu, mem, bits, free, self.types)
        if k.measure == "fgd+cpu":
            base = frag.fgd(cpu, bits, free, self.types)
            return base + k.cpu_weight * frag.fill(cpu, mem, bits, free, self.types, blocked_only=True)
        return super()._measure(cpu, mem, bits, free)

    def _type_key(self, i: int) -> tuple[int, ...]:
        key = super()._type_key(i)
        return (*key, int(self.pods.mem[i])) if self.knobs.with_memory else key

    def _learned_types(self) -> PodTypes:
        types = typical_types(self.seen, self.knobs.coverage)
        if self.knobs.weight_by == "gpu":
            w = types.weight * np.maximum(types.milli * types.num, 100)
            types = replace(types, weight=w / w.sum())
        return types

    def _shortfall(self, idle: np.ndarray, cpu: np.ndarray, mem: np.ndarray) -> np.ndarray:
        need = self.knobs.headroom_need
        by_cpu = idle - cpu * (self.gpu_milli / max(need * self.gpu_cpu, 1))
        by_mem = idle - mem * (self.gpu_milli / max(need * self.gpu_mem, 1))
        return np.maximum(0.0, np.maximum(by_cpu, by_mem))

    def _headroom_cost(self, cand: Candidates, i: int) -> F64:
        if self.knobs.headroom <= 0:
            return np.zeros(cand.count)
        return self.knobs.headroom * super()._headroom_cost(cand, i)

    def _score(self, exact: F64) -> F64:
        k = self.knobs
        if k.quantize:
            return super()._score(exact)
        return np.floor(exact / k.step) if k.step > 0 else exact

    def _ties(self, cand: Candidates, score: F64) -> I64:
        k = self.knobs
        tie = np.flatnonzero(score >= score.max() - (k.tau if k.tau > 0 else TIE))
        if len(tie) > 1 and k.cpu_guard > 0 and self.gpu_milli:
            need = cand.free_after[tie].sum(axis=1) * (k.cpu_guard * self.gpu_cpu / self.gpu_milli)
            safe = tie[cand.cpu_after[tie] >= need]
            if len(safe):
                tie = safe
        if len(tie) > 1 and k.pack_weight:
            left = cand.free_after[tie].sum(axis=1) / 8000.0 + cand.cpu_after[tie] / 128000.0
            key = left * k.pack_weight
            tie = tie[key <= key.min() + 1e-12]
        return tie

    def _pick(self, cand: Candidates, tie: I64, exact: F64) -> int:
        if self.knobs.gpu_exact:
            return super()._pick(cand, tie, exact)
        node = cand.node[tie][np.argmin(self.rank[cand.node[tie]])]
        return int(tie[cand.node[tie] == node][0])

    def _choose(self, cand: Candidates, i: int, share: bool, milli: int) -> int:
        k, c = self.knobs, self.cluster
        if not (k.cpu_surplus and self.pods.num_gpu[i] == 0 and self.gpu_milli):
            return super()._choose(cand, i, share, milli)
        idle = c.gpu_free[cand.node].sum(axis=1)
        surplus = cand.cpu_after - idle * (self.gpu_cpu / self.gpu_milli)
        if k.mem_surplus:
            mem_left = c.mem_free[cand.node] - self.pods.mem[i] - idle * (self.gpu_mem / self.gpu_milli)
            surplus = np.minimum(surplus / c.nodes.cpu[cand.node], mem_left / c.nodes.mem[cand.node])
        best = np.flatnonzero(surplus >= surplus.max() - 1e-9)
        return int(best[np.argmin(self.rank[cand.node[best]])])


def make(name: str) -> Online:
    """The shipped `online` for "online", else the named variant."""
    return Online() if name == "online" else Variant(VARIANTS[name])


def _one(job: tuple[str, str, int]) -> tuple[str, int, float]:
    from gpupolicy.solver.simulate.replay import Replay
    from gpupolicy.solver.simulate.trace import parse_nodes, parse_pods

    trace, name, seed = job
    nodes = parse_nodes(data_file("openb/openb_node_list_gpu_node.csv").read_text(), "openb_node_list_gpu_node.csv")
    pods = parse_pods(data_file(f"openb/openb_pod_list_{trace}.csv").read_text(), nodes.models, trace)
    return name, seed, Replay(nodes, pods).run(make(name), seed).at_130


def main() -> int:
    from gpupolicy.solver.simulate.run import parse_seeds

    ap = argparse.ArgumentParser()
    ap.add_argument("--trace", default="default", help="openb pod list: default, cpu050, gpushare40, ...")
    ap.add_argument("--seeds", default="42")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names (see the docstring)")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    names = ["online", *(v for v in args.variants.split(",") if v != "online")]
    unknown = [v for v in names if v != "online" and v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    seeds = parse_seeds(args.seeds)
    with ProcessPoolExecutor(args.jobs) as pool:
        done = list(pool.map(_one, [(args.trace, v, s) for v in names for s in seeds]))
    base = {s: a for v, s, a in done if v == "online"}
    print(f"`{args.trace}`, seeds {args.seeds}:")
    print("| variant | alloc @130% (mean ± sd) | per seed | − online (same seeds) |")
    print("|---|---|---|---|")
    for v in names:
        rows = [(s, a) for w, s, a in done if w == v]
        at = np.array([a for _, a in rows])
        sd = at.std(ddof=1) if len(at) > 1 else 0.0
        per = ", ".join(f"{a:.2f}" for a in at)
        diff = np.mean([a - base[s] for s, a in rows])
        print(f"| {v} | {at.mean():.2f} ± {sd:.2f} | {per} | {diff:+.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
