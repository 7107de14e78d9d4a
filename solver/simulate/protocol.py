"""The FGD protocol: arrival order, the 130% tuning and the typical pod set.

As in hkust-adsl/kubernetes-scheduler-simulator (read for facts, not copied):

- the trace's pods are shuffled by the seed;
- then, if the total GPU request is below ``target x cluster GPU milli``, pods are drawn with
  replacement (CPU-only pods included, equal weight) from the original list and appended to
  the end until the next draw would pass the target. Like the original, the stop test adds
  the drawn pod's *per-GPU* share while the running total adds its full request;
- if the total is above the target, random pods are removed until it is at or below it;
- a target <= 0 keeps the trace as it is (only shuffled).

Typical pods are the most frequent (cpu, per-GPU milli, GPU count, gpu_spec) types of the
original trace (CPU-only pods included) covering at least 95% of its pods, renormalised.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gpupolicy.solver.simulate.trace import Pods

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def arrival_order(pods: Pods, capacity_milli: int, seed: int, target: float = 1.3) -> I64:
    """Indexes into ``pods`` in arrival order (with repeats when the trace was resampled)."""
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(pods.count))
    request = pods.gpu_request
    total = int(request.sum())
    goal = target * capacity_milli
    if target <= 0:  # no tuning: the shuffled trace as it is
        return np.array(order, dtype=np.int64)
    if total == 0 or capacity_milli <= 0:
        raise ValueError("tuning to a share of GPU capacity needs GPU capacity and pods that ask for GPUs")
    if total < goal:
        while True:
            pick = int(rng.integers(pods.count))
            if total + int(pods.milli[pick]) > goal:
                break
            total += int(request[pick])
            order.append(pick)
    elif total > goal:
        while total > goal and order:
            drop = int(rng.integers(len(order)))
            total -= int(request[order.pop(drop)])
    return np.array(order, dtype=np.int64)


@dataclass(frozen=True)
class PodTypes:
    """A weighted set of pod types (cpu, per-GPU milli, GPU count, model mask)."""

    cpu: I64
    milli: I64
    num: I64
    mask: I64
    weight: F64  # sums to 1
    mem: I64 | None = None  # memory per type (MiB), when known

    def memory(self) -> I64:
        return np.zeros_like(self.cpu) if self.mem is None else self.mem

    @property
    def count(self) -> int:
        return len(self.cpu)


def type_counts(pods: Pods, index: I64 | None = None) -> Counter[tuple[int, ...]]:
    idx = np.arange(pods.count) if index is None else index
    keys = zip(
        pods.cpu[idx].tolist(), pods.milli[idx].tolist(), pods.num_gpu[idx].tolist(), pods.spec_mask[idx].tolist()
    )
    return Counter(keys)


def typical_types(counts: Counter[tuple[int, ...]], coverage: float = 0.95) -> PodTypes:
    """The most frequent types covering ``coverage`` of the pods (ties: larger type first)."""
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    chosen: list[tuple[tuple[int, ...], int]] = []
    cum = 0
    for key, n in ranked:
        if cum >= coverage * total:
            break
        chosen.append((key, n))
        cum += n
    weight = np.array([n for _, n in chosen], dtype=np.float64)
    return PodTypes(
        cpu=np.array([k[0] for k, _ in chosen], dtype=np.int64),
        milli=np.array([k[1] for k, _ in chosen], dtype=np.int64),
        num=np.array([k[2] for k, _ in chosen], dtype=np.int64),
        mask=np.array([k[3] for k, _ in chosen], dtype=np.int64),
        weight=weight / weight.sum(),
        mem=np.array([k[4] for k, _ in chosen], dtype=np.int64) if chosen and len(chosen[0][0]) > 4 else None,
    )
