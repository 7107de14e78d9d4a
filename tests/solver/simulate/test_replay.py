from __future__ import annotations

import numpy as np
import pytest

from gpupolicy.solver.simulate.cluster import Cluster, Placement
from gpupolicy.solver.simulate.replay import Replay, bucket_means
from gpupolicy.solver.simulate.run import STRATEGIES, parse_seeds
from gpupolicy.solver.simulate.strategies import FirstFit
from gpupolicy.solver.simulate.trace import Nodes, Pods, parse_nodes, parse_pods


def test_buckets_average_events_by_rounded_arrived_percent() -> None:
    arrived = np.array([0.2, 0.6, 1.4, 3.0])
    alloc = np.array([10.0, 20.0, 30.0, 40.0])
    out = bucket_means(arrived, alloc)
    assert out[0] == 10.0  # 0.2 -> 0
    assert out[1] == 25.0  # 0.6 and 1.4 -> 1
    assert out[2] == pytest.approx((25.0 * 2 + 40.0) / 3)  # empty: neighbours 1..3
    assert out[3] == 40.0
    assert np.isnan(out[10])


def test_first_fit_allocation_by_hand(nodes: Nodes, pods: Pods) -> None:
    # no tuning (target 0 keeps the list), arrival order is the shuffled trace
    replay = Replay(nodes, pods, target=0.0)
    res = replay.run(FirstFit(), seed=3, check=True)
    # every pod fits on this cluster: all 4250 milli of 6000 end up allocated
    assert res.failed == {}
    assert res.final_allocation == pytest.approx(4250 / 6000 * 100)


def test_failed_pods_count_in_arrived_demand() -> None:
    nodes = parse_nodes("sn,cpu_milli,memory_mib,gpu,model\nn,1000,1000,1,A\n")
    pods = parse_pods("name,cpu_milli,memory_mib,num_gpu,gpu_milli\na,100,1,1,600\nb,100,1,1,600\n", nodes.models)
    res = Replay(nodes, pods, target=0.0).run(FirstFit(), seed=1)
    assert res.failed == {"share": 1}
    # the second pod fails but still moves the x-axis: 60% then 120% arrived, 60% allocated
    assert res.curve[60] == 60.0
    assert res.curve[120] == 60.0
    assert np.isnan(res.curve[90])


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_keeps_capacity_invariants(name: str, nodes: Nodes, pods: Pods) -> None:
    replay = Replay(nodes, pods, target=1.3)
    res = replay.run(STRATEGIES[name](), seed=5, check=True)
    assert 0 < res.final_allocation <= 100
    assert res.pods >= pods.count


def test_model_constraints_are_respected(nodes: Nodes, pods: Pods) -> None:
    cluster = Cluster(nodes)
    # p2 asks for a T4 (node 0); node 1 is a V100
    assert cluster.feasible(pods, 2).tolist() == [True, False, False]
    assert not cluster.fits(pods, 2, Placement(1, (0,)))
    with pytest.raises(ValueError):
        cluster.place(pods, 2, Placement(1, (0,)))


def test_checker_catches_over_allocation(nodes: Nodes, pods: Pods) -> None:
    cluster = Cluster(nodes)
    cluster.place(pods, 0, Placement(0, (0,)))
    cluster.gpu_free[0, 0] = -10
    with pytest.raises(AssertionError):
        cluster.check()


@pytest.mark.parametrize(("text", "want"), [("42-44", [42, 43, 44]), ("1,5", [1, 5]), ("7", [7])])
def test_seed_ranges(text: str, want: list[int]) -> None:
    assert parse_seeds(text) == want


def test_bad_seed_range() -> None:
    with pytest.raises(ValueError):
        parse_seeds("9-3")


def test_mig_profiles_cover_the_share() -> None:
    from gpupolicy.solver.simulate.mig import WHOLE, h100_profiles, profile_of

    prof = h100_profiles()
    assert prof.names == ("1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb")
    assert [prof.names[profile_of(m, 1, prof)] for m in (100, 160, 250, 470, 571, 810)] == [
        "1g.10gb",
        "2g.20gb",
        "2g.20gb",
        "4g.40gb",
        "4g.40gb",
        "7g.80gb",
    ]
    assert profile_of(1000, 2, prof) == WHOLE


@pytest.mark.parametrize("strategy", ["first-fit", "online", "batch"])
def test_mig_replay_never_over_allocates(strategy: str, nodes: Nodes, pods: Pods) -> None:
    from gpupolicy.solver.simulate.mig import replay_mig

    res = replay_mig(nodes, pods, strategy, seed=3)  # replay_mig runs the checker at the end
    assert 0 < res.final <= 100


def _one_h100(milli: list[int]) -> tuple[Nodes, Pods]:
    """One node with one H100 and one single-GPU share pod per entry of ``milli``."""
    nodes = parse_nodes("sn,cpu_milli,memory_mib,gpu,model\nn0,16000,65536,1,H100\n", "n.csv")
    rows = "".join(f"p{i},1000,1024,1,{m},\n" for i, m in enumerate(milli))
    return nodes, parse_pods("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n" + rows, nodes.models, "p.csv")


def test_mig_batch_window_fits_what_online_cannot() -> None:
    """A 3g then a 4g on one H100: online puts the 3g on memory slots 0-3, where the only 4g
    placement lives, and the 4g fails; a window that sees both puts the 3g on slots 4-7."""
    from gpupolicy.solver.simulate.mig import Learned, MigCluster, apply, choose, h100_profiles, profile_of
    from gpupolicy.solver.simulate.mig_batch import MigBatchConfig, solve_window

    nodes, pods = _one_h100([320, 470])
    prof = h100_profiles()
    qs = [profile_of(320, 1, prof), profile_of(470, 1, prof)]
    assert [prof.names[q] for q in qs] == ["3g.40gb", "4g.40gb"]
    rank = np.zeros(1, dtype=np.int64)
    learned = Learned(prof)  # nothing learned yet: placement order decides

    online = MigCluster(nodes, prof)
    first = choose(online, pods, 0, qs[0], "online", rank, learned)
    assert first is not None
    apply(online, pods, 0, qs[0], first)
    assert choose(online, pods, 1, qs[1], "online", rank, learned) is None

    batch = MigCluster(nodes, prof)
    decided = solve_window(batch, pods, 0, qs, rank, learned, MigBatchConfig())
    for i, q in enumerate(qs):
        choice = decided[i]
        assert choice is not None
        apply(batch, pods, i, q, choice)  # raises if the window's answer overlaps
    assert batch.slices_in_use() == 7


def test_mig_apply_refuses_overlapping_instances() -> None:
    from gpupolicy.solver.simulate.mig import Choice, MigCluster, apply, h100_profiles, profile_of

    nodes, pods = _one_h100([320, 320])
    prof = h100_profiles()
    q = profile_of(320, 1, prof)
    cl = MigCluster(nodes, prof)
    apply(cl, pods, 0, q, Choice(0, (0,), 0))
    with pytest.raises(ValueError, match="does not fit"):
        apply(cl, pods, 1, q, Choice(0, (0,), 0))


@pytest.mark.parametrize(("strategy", "placed"), [("first-fit", [0, 0, None]), ("online", [0, 1, 0])])
def test_mig_online_keeps_cpu_next_to_free_gpus(strategy: str, placed: list[int | None]) -> None:
    """A CPU-only pod that first-fit puts on the GPU node leaves too little CPU for the next
    GPU pod; online sends it to the CPU-only node, where no free slices need the CPU."""
    from gpupolicy.solver.simulate.mig import Learned, MigCluster, apply, choose, h100_profiles, profile_of

    nodes = parse_nodes("sn,cpu_milli,memory_mib,gpu,model\ngpu,6000,65536,2,H100\ncpu,64000,65536,0,\n", "n.csv")
    pods = parse_pods(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
        "g0,2000,1024,1,1000,\nc0,3000,1024,0,0,\ng1,2000,1024,1,1000,\n",
        nodes.models,
        "p.csv",
    )
    prof = h100_profiles()
    cl, learned, rank = MigCluster(nodes, prof), Learned(prof), np.arange(2, dtype=np.int64)
    got: list[int | None] = []
    for i in range(pods.count):
        q = profile_of(int(pods.milli[i]), int(pods.num_gpu[i]), prof)
        learned.observe(pods, i, q)
        choice = choose(cl, pods, i, q, strategy, rank, learned)
        if choice is not None:
            apply(cl, pods, i, q, choice)
        got.append(None if choice is None else choice.node)
    assert got == placed
