from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from gpupolicy.solver.simulate.protocol import arrival_order, type_counts, typical_types
from gpupolicy.solver.simulate.trace import Pods, parse_pods


def _pods(rows: list[tuple[int, int, int]]) -> Pods:
    text = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n" + "".join(
        f"p{i},{c},1,{n},{m}\n" for i, (c, n, m) in enumerate(rows)
    )
    return parse_pods(text, ("A",))


def test_tuning_up_appends_draws_until_the_next_would_pass() -> None:
    pods = _pods([(1000, 1, 500), (1000, 1, 300), (1000, 0, 0), (1000, 2, 1000)])
    capacity = 4000  # 4 GPUs
    order = arrival_order(pods, capacity, seed=42, target=1.3)
    # the original pods come first, shuffled, each exactly once
    assert sorted(order[:4].tolist()) == [0, 1, 2, 3]
    total = int(pods.gpu_request[order].sum())
    assert len(order) > 4  # 2800 < 5200: resampled
    # like the reference simulator, a draw is kept while total + its per-GPU share fits
    last = int(order[-1])
    assert total - int(pods.gpu_request[last]) + int(pods.milli[last]) <= 1.3 * capacity
    assert total >= 1.3 * capacity - 1000


def test_tuning_down_removes_pods_until_at_or_below_target() -> None:
    pods = _pods([(1000, 1, 1000)] * 10)
    order = arrival_order(pods, 4000, seed=1, target=1.3)
    assert len(order) == 5  # 5 x 1000 <= 5200 < 6 x 1000
    assert len(set(order.tolist())) == 5


def test_tuning_without_gpu_demand_or_capacity_is_refused_not_an_endless_loop() -> None:
    cpu_only = _pods([(1000, 0, 0), (2000, 0, 0)])
    with pytest.raises(ValueError, match="GPU capacity"):
        arrival_order(cpu_only, 4000, seed=1, target=1.3)
    with pytest.raises(ValueError, match="GPU capacity"):
        arrival_order(_pods([(1000, 1, 500)]), 0, seed=1, target=1.3)
    assert sorted(arrival_order(cpu_only, 4000, seed=1, target=0).tolist()) == [0, 1]  # no tuning: as it is


def test_tuning_is_reproducible_per_seed_and_differs_across_seeds() -> None:
    pods = _pods([(1000, 1, m) for m in range(100, 1000, 100)])
    a = arrival_order(pods, 6000, seed=7)
    assert np.array_equal(a, arrival_order(pods, 6000, seed=7))
    assert not np.array_equal(a, arrival_order(pods, 6000, seed=8))


def test_typical_types_cover_95_percent_by_frequency() -> None:
    counts: Counter[tuple[int, ...]] = Counter(
        {(1, 500, 1, 1): 60, (2, 1000, 1, 1): 30, (3, 0, 0, 1): 6, (4, 250, 1, 1): 4}
    )
    t = typical_types(counts, 0.95)
    # 60 + 30 = 90 < 95, + 6 = 96 >= 95: three types, renormalised over 96 pods
    assert t.count == 3
    assert t.cpu.tolist() == [1, 2, 3]
    assert np.allclose(t.weight, [60 / 96, 30 / 96, 6 / 96])


def test_type_counts_key_on_cpu_share_count_and_model() -> None:
    pods = _pods([(1000, 1, 500), (1000, 1, 500), (2000, 1, 500)])
    assert type_counts(pods) == Counter({(1000, 500, 1, 1): 2, (2000, 500, 1, 1): 1})
