"""Run the timeline replay over seeds and summarise it: mean and sd over seeds of every measure.

Per seed (times in simulated seconds from the first arrival, ``H`` = the last arrival):

- ``allocation_mean``: GPU milli in use integrated over [0, H], / capacity / H, in %;
  ``allocation_mean_to_end`` the same up to the last departure (the drain included);
- ``wait_*_s``: placement time - arrival of the pods that were placed (mean, p50, p95, p99), overall and
  per priority; ``never_placed``: pods still waiting when nothing is left to happen;
- ``fragmentation_mean``: FGD's fragmentation (the trace's typical pods), time-weighted over [0, H], % of
  GPU capacity; ``queue_mean`` (time-weighted over [0, H]) and ``queue_max``;
- ``evictions``: 0, since no strategy preempts yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from gpupolicy.solver.simulate.run import STRATEGIES
from gpupolicy.solver.simulate.timeline import TimelineResult, Workload, replay_timeline
from gpupolicy.solver.simulate.trace import Nodes, Pods

F64 = npt.NDArray[np.float64]
GRID = 200  # points of the time series in the JSON (for --plot)
SCALARS = (
    "allocation_mean",
    "allocation_mean_to_end",
    "wait_mean_s",
    "wait_p50_s",
    "wait_p95_s",
    "wait_p99_s",
    "never_placed",
    "fragmentation_mean",
    "queue_mean",
    "queue_max",
    "placed",
    "evictions",
    "makespan_s",
    "retries",
    "seconds",
)


def _waits(wait: F64) -> dict[str, float]:
    placed = wait[~np.isnan(wait)]
    if len(placed) == 0:
        return {
            "wait_mean_s": float("nan"),
            "wait_p50_s": float("nan"),
            "wait_p95_s": float("nan"),
            "wait_p99_s": float("nan"),
        }
    p50, p95, p99 = np.percentile(placed, [50, 95, 99])
    return {
        "wait_mean_s": float(placed.mean()),
        "wait_p50_s": float(p50),
        "wait_p95_s": float(p95),
        "wait_p99_s": float(p99),
    }


def seed_measures(r: TimelineResult) -> dict[str, float]:
    """The scalar measures of one seed."""
    h = r.last_arrival
    end = float(r.t[-1]) if len(r.t) else 0.0
    return {
        "allocation_mean": r.mean_over(r.used, h) / r.capacity * 100,
        "allocation_mean_to_end": r.mean_over(r.used, end) / r.capacity * 100,
        **_waits(r.wait),
        "never_placed": float(r.never_placed),
        "fragmentation_mean": r.mean_over(r.frag, h) / r.capacity * 100,
        "queue_mean": r.mean_over(r.queue.astype(np.float64), h),
        "queue_max": float(r.queue.max()) if len(r.queue) else 0.0,
        "placed": float((~np.isnan(r.wait)).sum()),
        "evictions": float(r.evictions),
        "makespan_s": end,
        "retries": float(r.retries),
        "seconds": r.seconds,
    }


def _num(x: float) -> float | None:
    return None if np.isnan(x) else round(float(x), 4)


def _mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    kept = np.array([v for v in values if not np.isnan(v)])
    if len(kept) == 0:
        return None, None
    return _num(float(kept.mean())), _num(float(kept.std(ddof=1))) if len(kept) > 1 else 0.0


def _group(results: Sequence[TimelineResult], masks: list[npt.NDArray[np.bool_]]) -> dict[str, object]:
    """Waits and never-placed pods of one group (``masks``: its pods, per seed), mean and sd over seeds."""
    doc: dict[str, object] = {"pods": int(masks[0].sum())}
    rows = [{**_waits(r.wait[m]), "never_placed": float(np.isnan(r.wait[m]).sum())} for r, m in zip(results, masks)]
    for key in ("wait_mean_s", "wait_p50_s", "wait_p95_s", "wait_p99_s", "never_placed"):
        doc[key], doc[f"{key}_sd"] = _mean_sd([row[key] for row in rows])
    return doc


def per_priority(results: Sequence[TimelineResult]) -> dict[str, dict[str, object]]:
    """Waits and never-placed pods per priority level (mean and sd over seeds), with the level's qos classes."""
    out: dict[str, dict[str, object]] = {}
    first = results[0]
    for level in sorted({int(p) for p in first.priority}, reverse=True):
        doc = _group(results, [r.priority == level for r in results])
        doc["qos"] = sorted({first.qos[i] for i in np.flatnonzero(first.priority == level)})
        out[str(level)] = doc
    return out


def per_kind(results: Sequence[TimelineResult]) -> dict[str, dict[str, object]]:
    """The same per pod kind: ``cpu``, ``share``, ``1gpu``, ``2gpu``, ... (big pods wait longest)."""
    kinds = sorted({str(k) for k in results[0].kind})
    return {k: _group(results, [r.kind == k for r in results]) for k in kinds}


def series(results: Sequence[TimelineResult]) -> dict[str, list[float | None]]:
    """Allocation % and queue length on a grid of ``GRID`` instants up to the last placement or arrival
    (mean over seeds), and the CDF of waits (percentiles 0..100 of all placed pods of all seeds)."""
    horizon = max(
        max(r.last_arrival, float(np.nanmax(r.placed_at)) if (~np.isnan(r.placed_at)).any() else 0.0) for r in results
    )
    grid = np.linspace(0.0, horizon, GRID)
    alloc, queue = [], []
    for r in results:
        idx = np.clip(np.searchsorted(r.t, grid, side="right") - 1, 0, max(len(r.t) - 1, 0))
        alloc.append(r.used[idx] / r.capacity * 100 if len(r.t) else np.zeros(GRID))
        queue.append(r.queue[idx].astype(np.float64) if len(r.t) else np.zeros(GRID))
    waits = np.concatenate([r.wait[~np.isnan(r.wait)] for r in results])
    cdf = np.percentile(waits, np.arange(101)) if len(waits) else np.full(101, np.nan)
    return {
        "t_s": [_num(x) for x in grid],
        "allocation": [_num(x) for x in np.mean(alloc, axis=0)],
        "queue": [_num(x) for x in np.mean(queue, axis=0)],
        "wait_cdf_s": [_num(x) for x in cdf],
    }


def summarize(results: Sequence[TimelineResult]) -> dict[str, object]:
    """One strategy's JSON: each scalar (mean over seeds), ``NAME_sd``, per priority, per seed, series."""
    rows = [seed_measures(r) for r in results]
    doc: dict[str, object] = {"seeds": [r.seed for r in results], "pods": results[0].wait.size if results else 0}
    for key in SCALARS:
        doc[key], doc[f"{key}_sd"] = _mean_sd([row[key] for row in rows])
    doc["skipped_unscheduled"] = results[0].skipped if results else 0
    doc["per_seed"] = {
        key: [_num(row[key]) for row in rows]
        for key in ("allocation_mean", "wait_mean_s", "wait_p99_s", "never_placed")
    }
    doc["per_priority"] = per_priority(results)
    doc["per_kind"] = per_kind(results)
    doc["series"] = series(results)
    return doc


def run_timeline(
    nodes: Nodes,
    work: Workload,
    strategy: str,
    seeds: Sequence[int],
    check: bool = False,
    typical_pods: Pods | None = None,
    progress: Callable[[str, int], None] | None = None,
    mig: bool = False,
) -> list[TimelineResult]:
    """One result per seed; ``mig``: the MIG variant (:mod:`gpupolicy.solver.simulate.timeline_mig`)."""
    from gpupolicy.solver.simulate.timeline_mig import replay_timeline_mig

    out = []
    for seed in seeds:
        if mig:
            out.append(replay_timeline_mig(nodes, work, strategy, seed, check))
        else:
            out.append(replay_timeline(nodes, work, STRATEGIES[strategy](), seed, check, typical_pods))
        if progress is not None:
            progress(strategy, seed)
    return out
