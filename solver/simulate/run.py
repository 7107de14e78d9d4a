"""Run strategies over seeds and summarise the way the paper reports: mean and sd over seeds."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gpupolicy.solver.simulate.batch import Batch
from gpupolicy.solver.simulate.fgd import Fgd
from gpupolicy.solver.simulate.online import Online
from gpupolicy.solver.simulate.replay import Replay, SeedResult
from gpupolicy.solver.simulate.strategies import BestFit, FirstFit, GpuPacking, RandomFit, Strategy

STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "random": RandomFit,
    "first-fit": FirstFit,
    "best-fit": BestFit,
    "gpu-packing": GpuPacking,
    "fgd": Fgd,
    "online": Online,
    "batch": Batch,
}


MAX_SEEDS = 1000  # each seed is a whole replay of the trace (the published runs use 10)
MAX_SEED_VALUE = 2**32 - 1  # numpy's classic seed range
_SEED_PART = re.compile(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?")


def parse_seeds(text: str) -> list[int]:
    """``42-51``, ``42,43`` or ``42``: at most ``MAX_SEEDS`` seeds in ``[0, MAX_SEED_VALUE]``, counted
    before the list is built; raises ValueError on anything else."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        match = _SEED_PART.fullmatch(part)
        if match is None:
            raise ValueError(f"{part.strip()!r} is not a seed or a range of seeds like 42-51")
        lo = _seed(match[1])
        hi = lo if match[2] is None else _seed(match[2])
        if hi < lo:
            raise ValueError(f"empty seed range {part.strip()}")
        ranges.append((lo, hi))
    count = sum(hi - lo + 1 for lo, hi in ranges)
    if count > MAX_SEEDS:
        raise ValueError(f"at most {MAX_SEEDS} seeds, not {count}")
    return [seed for lo, hi in ranges for seed in range(lo, hi + 1)]


def _seed(digits: str) -> int:
    if len(digits) > len(str(MAX_SEED_VALUE)) or int(digits) > MAX_SEED_VALUE:
        shown = digits if len(digits) <= 20 else f"{digits[:20]}..."
        raise ValueError(f"seeds are integers in [0, {MAX_SEED_VALUE}], not {shown}")
    return int(digits)


def _r(x: float) -> float | None:
    return None if np.isnan(x) else round(float(x), 4)


def _mean(values: Sequence[float]) -> float | None:
    """Mean of the values that are not NaN (None when there are none)."""
    kept = [v for v in values if not np.isnan(v)]
    return _r(float(np.mean(kept))) if kept else None


def mean_curve(arrays: Sequence[np.ndarray]) -> list[float | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # buckets no seed reached stay NaN
        mean = np.nanmean(np.vstack(arrays), axis=0) if arrays else np.zeros(0)
    return [_r(v) for v in mean]


@dataclass
class Summary:
    strategy: str
    trace: str
    results: list[SeedResult]
    seconds: float

    @property
    def at_130(self) -> list[float]:
        return [r.at_130 for r in self.results]

    def to_json(self) -> dict[str, object]:
        at = np.array(self.at_130)
        decision = np.concatenate([r.decision_ms for r in self.results]) if self.results else np.zeros(1)
        kinds = sorted({k for r in self.results for k in r.failed})
        failed = {k: round(float(np.mean([r.failed.get(k, 0) for r in self.results])), 1) for k in kinds}
        return {
            "strategy": self.strategy,
            "trace": self.trace,
            "seeds": [r.seed for r in self.results],
            "allocation_at_130": _r(float(at.mean())),
            "allocation_at_130_sd": _r(float(at.std(ddof=1))) if len(at) > 1 else 0.0,
            "allocation_at_130_per_seed": [_r(x) for x in at],
            "curve": mean_curve([r.curve for r in self.results]),
            "curve_per_seed": [[_r(v) for v in r.curve] for r in self.results],
            "fragmentation": mean_curve([r.frag for r in self.results]),
            "fragmentation_ratio": mean_curve([r.frag_ratio for r in self.results]),
            "stranded": mean_curve([r.stranded for r in self.results]),
            "failed_pods": failed,
            "failed_pods_total": round(sum(failed.values()), 1),
            "pods": [r.pods for r in self.results],
            "seconds": round(self.seconds, 2),
            "seconds_per_seed": [round(r.seconds, 2) for r in self.results],
            "decision_ms": {
                "median": round(float(np.median(decision)), 4),
                "p99": round(float(np.percentile(decision, 99)), 4),
            },
            "first_gpu_failure_pct": _mean([r.first_gpu_failure_pct for r in self.results]),
            "first_gpu_failure_pct_per_seed": [_r(r.first_gpu_failure_pct) for r in self.results],
            **self._ceiling(),
        }

    def _ceiling(self) -> dict[str, object]:
        values = [r.ceiling for r in self.results]
        if not values or all(np.isnan(v) for v in values):
            return {}
        return {
            "ceiling_at_130": _mean(values),
            "ceiling_at_130_per_seed": [_r(v) for v in values],
            "ceiling_exact": all(r.ceiling_exact for r in self.results),
        }


def run(
    replay: Replay,
    strategy: str,
    seeds: Sequence[int],
    trace: str = "",
    check: bool = False,
    progress: Callable[[str, int, int, int], None] | None = None,
    ceiling: float | None = None,
) -> Summary:
    results: list[SeedResult] = []
    total = 0.0
    for seed in seeds:

        def tick(done: int, n: int, seed: int = seed) -> None:
            if progress is not None:
                progress(strategy, seed, done, n)

        res = replay.run(
            STRATEGIES[strategy](), seed, check=check, progress=tick if progress else None, ceiling=ceiling
        )
        total += res.seconds
        results.append(res)
    return Summary(strategy, trace, results, total)
