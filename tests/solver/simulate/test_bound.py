from __future__ import annotations

import math

import numpy as np
import pytest

from gpupolicy.solver.simulate.bound import arrived_before, ceiling, placeable
from gpupolicy.solver.simulate.patterns import best_pattern
from gpupolicy.solver.simulate.protocol import arrival_order
from gpupolicy.solver.simulate.replay import Replay
from gpupolicy.solver.simulate.run import STRATEGIES
from gpupolicy.solver.simulate.trace import Nodes, Pods, parse_nodes, parse_pods

TWO_GPUS = "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,A\n"


def _pods(nodes: Nodes, rows: list[str]) -> Pods:
    text = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n" + "\n".join(rows) + "\n"
    return parse_pods(text, nodes.models)


def _multisets(sizes: list[int], capacity: int = 1000) -> list[tuple[int, ...]]:
    """Every non-empty multiset of ``sizes`` (ascending) that fits: the brute-force oracle."""
    out: list[tuple[int, ...]] = []

    def grow(start: int, left: int, cur: tuple[int, ...]) -> None:
        for k in range(start, len(sizes)):
            if sizes[k] <= left:
                out.append((*cur, sizes[k]))
                grow(k, left - sizes[k], (*cur, sizes[k]))

    grow(0, capacity, ())
    return out


@pytest.mark.parametrize("seed", range(8))
def test_pricing_finds_the_best_pattern_of_all(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = sorted({int(x) for x in rng.choice(np.arange(50, 1000, 10), size=int(rng.integers(1, 6)))})
    price = [float(s + rng.normal(0, 120)) for s in sizes]
    value = dict(zip(sizes, price, strict=True))
    gain, pattern = best_pattern(sizes, price)
    assert sum(pattern) <= 1000
    assert gain == pytest.approx(sum(value[s] for s in pattern))
    best = max([0.0, *(sum(value[s] for s in p) for p in _multisets(sizes))])
    assert gain == pytest.approx(best)


def test_the_ceiling_reports_how_its_optimum_fills_the_gpus() -> None:
    nodes = parse_nodes(TWO_GPUS)
    pods = _pods(nodes, ["a,1,1,1,810,", "b,1,1,1,1000,", "c,1,1,1,150,", "d,1,1,1,600,"])
    found = ceiling(nodes, pods, _first(pods, 1))  # the 810 must be placed; any of the rest may be
    assert found.allocation == pytest.approx(98.0)  # 810 + 150 on one GPU, the 1000 on the other
    assert found.fill == pytest.approx({(150, 810): 1.0})  # whole GPUs are not patterns


def test_a_ceiling_cut_short_is_still_an_upper_bound() -> None:
    nodes = parse_nodes(TWO_GPUS)
    pods = _pods(nodes, ["a,1,1,1,810,", "b,1,1,1,1000,", "c,1,1,1,150,"])
    full = ceiling(nodes, pods, _first(pods, 1))
    assert full.exact and full.allocation == pytest.approx(98.0)
    # the answer needs the pattern (150, 810), which the first round does not have
    cut = ceiling(nodes, pods, _first(pods, 1), max_rounds=1)
    assert not cut.exact
    assert 98.0 - 1e-6 <= cut.allocation <= 100.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_lagrangian_bound_never_undercuts_the_full_lp(seed: int) -> None:
    nodes, pods = _random_trace(seed)
    arrivals = pods.take(arrival_order(pods, nodes.total_gpu_milli, seed, 1.3))
    forced = arrived_before(arrivals, nodes.total_gpu_milli, 60.0)
    full = ceiling(nodes, arrivals, forced)
    assert full.exact
    for rounds in (1, 2, 3):
        cut = ceiling(nodes, arrivals, forced, max_rounds=rounds)
        assert cut.allocation >= full.allocation - 1e-6


def _first(pods: Pods, k: int) -> np.ndarray:
    return np.arange(pods.count) < k


def test_arrived_before_marks_leading_arrivals_within_the_percent() -> None:
    nodes = parse_nodes(TWO_GPUS)
    pods = _pods(nodes, ["a,1,1,1,500,", "b,1,1,0,0,", "c,1,1,1,1000,", "d,1,1,1,500,"])
    assert arrived_before(pods, nodes.total_gpu_milli, 25.0).tolist() == [True, True, False, False]
    assert arrived_before(pods, nodes.total_gpu_milli, 75.0).tolist() == [True, True, True, False]
    assert not arrived_before(pods, nodes.total_gpu_milli, 0.0).any()


def test_an_810_share_caps_its_gpu_at_the_small_pods_that_arrive() -> None:
    nodes = parse_nodes(TWO_GPUS)
    pods = _pods(nodes, ["a,1,1,1,810,", "b,1,1,1,1000,", "c,1,1,1,600,", "d,1,1,1,400,", "e,1,1,1,150,"])
    # nothing forced: the best subset fills both GPUs (b, and c + d)
    assert ceiling(nodes, pods, _first(pods, 0)).allocation == pytest.approx(100.0)
    # the 810 must stay: its GPU can add at most the 150 share; the other GPU is filled
    assert ceiling(nodes, pods, _first(pods, 1)).allocation == pytest.approx((810 + 150 + 1000) / 2000 * 100)
    # all of a..d cannot be placed together: no schedule places that prefix
    assert math.isnan(ceiling(nodes, pods, _first(pods, 4)).allocation)


def test_model_constraints_and_multi_gpu_requests_are_kept() -> None:
    nodes = parse_nodes("sn,cpu_milli,memory_mib,gpu,model\nt,8000,8192,1,T4\nv,8000,8192,2,V100\n")
    pods = _pods(nodes, ["a,1,1,2,1000,V100", "b,1,1,1,1000,V100", "c,1,1,1,500,T4", "d,1,1,1,300,T4"])
    # a fills both V100s, so b cannot run; the T4 takes c and d
    bound = ceiling(nodes, pods, _first(pods, 1))
    assert bound.allocation == pytest.approx((2000 + 800) / 3000 * 100)
    assert bound.forced_pct == pytest.approx(2000 / 3000 * 100)


def _random_trace(seed: int) -> tuple[Nodes, Pods]:
    rng = np.random.default_rng(seed)
    node_rows = [
        f"n{k},{rng.choice([16000, 32000, 64000])},131072,{rng.choice([1, 2, 4, 8])},{'AB'[k % 2]}" for k in range(12)
    ]
    nodes = parse_nodes("sn,cpu_milli,memory_mib,gpu,model\n" + "\n".join(node_rows) + "\n")
    sizes = [1000, 1000, 810, 650, 470, 460, 320, 230, 160]
    pod_rows = []
    for k in range(120):
        num = int(rng.choice([0, 1, 1, 1, 1, 2, 4]))
        milli = int(rng.choice(sizes)) if num == 1 else (1000 if num else 0)
        spec = str(rng.choice(["", "", "", "A", "B"])) if num else ""
        pod_rows.append(f"p{k},{rng.choice([1000, 4000, 8000])},4096,{num},{milli},{spec}")
    return nodes, _pods(nodes, pod_rows)


@pytest.mark.parametrize("name", ["first-fit", "best-fit", "fgd", "online", "random"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_strategy_ends_above_the_ceiling_of_what_it_placed(name: str, seed: int) -> None:
    nodes, pods = _random_trace(seed)
    replay = Replay(nodes, pods, target=1.3)
    bounds = []
    for pct in (130.0, 95.0, 50.0):
        result = replay.run(STRATEGIES[name](), seed, ceiling=pct)
        assert result.first_gpu_failure >= 0, "the trace is meant to overflow the cluster"
        assert result.final_allocation <= result.ceiling + 1e-6
        assert np.nanmax(result.curve) <= result.ceiling + 1e-6  # allocation never falls: no bucket is above
        bounds.append(result.ceiling)
    # fewer forced pods can only raise the ceiling
    assert bounds[0] <= bounds[1] + 1e-6 <= bounds[2] + 2e-6
    # the same pods forced by hand give the same bound
    arrivals = pods.take(arrival_order(pods, nodes.total_gpu_milli, seed, 1.3))
    assert ceiling(
        nodes, arrivals, result.placed & arrived_before(arrivals, nodes.total_gpu_milli, 50.0)
    ).allocation == (pytest.approx(bounds[2]))


def test_cpu_and_memory_of_a_node_type_are_respected() -> None:
    nodes = parse_nodes("sn,cpu_milli,memory_mib,gpu,model\nn0,8000,65536,2,A\n")
    pods = _pods(nodes, ["a,8000,1024,1,1000,", "b,1000,1024,1,1000,", "c,1000,70000,1,500,"])
    # a takes all the CPU: b cannot follow; c never fits the node's memory
    assert ceiling(nodes, pods, _first(pods, 1)).allocation == pytest.approx(50.0)
    # nothing forced: b, and (the LP being a relaxation) 7/8 of a in the CPU b leaves; c still never fits
    assert ceiling(nodes, pods, _first(pods, 0)).allocation == pytest.approx((1000 + 875) / 2000 * 100)
    two_small = _pods(nodes, ["b,1000,1024,1,1000,", "d,1000,1024,1,1000,"])
    assert ceiling(nodes, two_small, _first(two_small, 0)).allocation == pytest.approx(100.0)


def test_a_multi_gpu_pod_needs_a_node_with_that_many_gpus() -> None:
    nodes = parse_nodes("sn,cpu_milli,memory_mib,gpu,model\nn0,8000,8192,2,A\nn1,8000,8192,2,A\n")
    pods = _pods(nodes, ["a,1000,1024,4,1000,", "b,1000,1024,2,1000,"])
    assert ceiling(nodes, pods, _first(pods, 0)).allocation == pytest.approx(50.0)  # only b


def test_placeable_marks_pods_no_empty_node_could_host() -> None:
    nodes = parse_nodes("sn,cpu_milli,memory_mib,gpu,model\nt,8000,8192,2,T4\nc,64000,8192,0,\n")
    pods = _pods(nodes, ["a,4000,1,1,500,T4", "b,16000,1,1,500,T4", "c,16000,1,0,0,", "d,1000,1,4,1000,"])
    # b needs more CPU than the T4 node has; c fits the CPU-only node; d needs 4 GPUs on one node
    assert placeable(nodes, pods).tolist() == [True, False, True, False]
