"""The timeline replay: hand-made traces with known waits, exact departures, and agreement with the
FGD protocol when nothing departs."""

from __future__ import annotations

import numpy as np
import pytest

from gpupolicy.solver.simulate import frag
from gpupolicy.solver.simulate.cluster import Cluster
from gpupolicy.solver.simulate.protocol import arrival_order, type_counts, typical_types
from gpupolicy.solver.simulate.replay import Replay
from gpupolicy.solver.simulate.run import STRATEGIES
from gpupolicy.solver.simulate.timeline import FragMeter, TimelineResult, replay_timeline, workload
from gpupolicy.solver.simulate.times import parse_times
from gpupolicy.solver.simulate.trace import Nodes, parse_nodes, parse_pods
from tests.solver.simulate.conftest import NODES_CSV

HEAD = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"


def _one_node(gpus: int) -> Nodes:
    return parse_nodes(f"sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,{gpus},V100\n", "n.csv")


def _replay(
    nodes: Nodes, rows: list[tuple[str, int, int, str, float, float]], strategy: str = "first-fit"
) -> TimelineResult:
    """rows: (name, num_gpu, gpu_milli, qos, creation, duration); scheduled = creation in the trace."""
    text = HEAD + "".join(f"{n},1000,1024,{g},{m},,{q},Running,{c:g},{c + d:g},{c:g}\n" for n, g, m, q, c, d in rows)
    pods = parse_pods(text, nodes.models, "p.csv")
    return replay_timeline(nodes, workload(pods, parse_times(text, "p.csv")), STRATEGIES[strategy](), 1, check=True)


def test_a_pod_waits_for_exactly_one_departure() -> None:
    r = _replay(_one_node(1), [("a", 1, 1000, "LS", 0, 100), ("b", 1, 1000, "LS", 10, 50)])
    assert r.wait.tolist() == [0.0, 90.0]  # b is placed when a leaves at 100
    assert r.t.tolist() == [0.0, 10.0, 100.0, 150.0]
    assert r.queue.tolist() == [0, 1, 0, 0]
    assert r.used.tolist() == [1000.0, 1000.0, 1000.0, 0.0]
    assert r.mean_over(r.used, r.last_arrival) == 1000.0
    assert r.never_placed == 0


def test_the_queue_serves_priority_before_arrival() -> None:
    rows = [("a", 1, 1000, "LS", 0, 100), ("b", 1, 1000, "BE", 10, 10), ("c", 1, 1000, "LS", 20, 10)]
    r = _replay(_one_node(1), rows)
    # c (LS) arrived after b (BE) but goes first when a leaves at 100; b follows when c leaves at 110
    assert r.wait.tolist() == [0.0, 100.0, 80.0]


def test_a_small_pod_behind_a_big_one_is_placed_when_it_fits() -> None:
    rows = [
        ("a1", 1, 1000, "LS", 0, 100),
        ("a2", 1, 1000, "LS", 0, 200),
        ("big", 2, 1000, "LS", 10, 50),  # first in the queue: needs both GPUs
        ("small", 1, 1000, "BE", 20, 50),  # behind it: fits in the GPU a1 frees at 100
    ]
    r = _replay(_one_node(2), rows)
    assert r.wait.tolist() == [0.0, 0.0, 190.0, 80.0]  # small at 100, big at 200 (a2 gone, small gone at 150)


def test_a_pod_that_never_fits_is_counted() -> None:
    r = _replay(_one_node(1), [("a", 1, 1000, "LS", 0, 10), ("huge", 2, 1000, "LS", 1, 10)])
    assert r.never_placed == 1 and np.isnan(r.wait[1])
    assert r.queue[-1] == 1


def test_shares_wait_for_room_on_the_gpu() -> None:
    rows = [("a", 1, 600, "LS", 0, 30), ("b", 1, 600, "LS", 5, 30), ("c", 1, 300, "BE", 6, 30)]
    r = _replay(_one_node(1), rows, "best-fit")
    assert r.wait.tolist() == [0.0, 25.0, 0.0]  # c fits next to a at once; b waits for a


TIMED_PODS = HEAD + "".join(
    f"p{i},{cpu},{mem},{g},{m},{spec},{q},Running,{c},{c + d},{c + s}\n"
    for i, (cpu, mem, g, m, spec, q, c, d, s) in enumerate(
        [
            (4000, 8192, 1, 500, "", "LS", 0, 40, 0),
            (4000, 8192, 1, 500, "", "BE", 1, 30, 2),
            (2000, 4096, 1, 1000, "T4", "LS", 1, 25, 0),
            (8000, 16384, 2, 1000, "V100", "Burstable", 2, 60, 1),
            (1000, 1024, 0, 0, "", "BE", 3, 10, 0),
            (1000, 2048, 1, 250, "", "LS", 3, 45, 0),
            (6000, 8192, 4, 1000, "", "LS", 4, 20, 0),
            (4000, 8192, 1, 800, "", "BE", 5, 35, 0),
            (2000, 4096, 2, 1000, "", "LS", 6, 15, 0),
            (1000, 1024, 1, 300, "", "BE", 7, 50, 0),
        ]
    )
)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_gives_back_exactly_what_it_held(name: str) -> None:
    """Cluster.check after every placement and departure (check=True), and at the end the cluster is
    exactly as empty as at the start: departures never free more (or less) than the pod held."""
    nodes = parse_nodes(NODES_CSV, "n.csv")
    pods = parse_pods(TIMED_PODS, nodes.models, "p.csv")
    work = workload(pods, parse_times(TIMED_PODS, "p.csv"), load=2.0)
    strategy = STRATEGIES[name]()
    r = replay_timeline(nodes, work, strategy, seed=3, check=True)
    cluster = strategy.ctx.cluster  # type: ignore[attr-defined]
    assert cluster.used_milli == 0
    assert (cluster.cpu_free == nodes.cpu).all() and (cluster.mem_free == nodes.mem).all()
    assert (cluster.gpu_free == Cluster(nodes).gpu_free).all()
    assert r.never_placed == 0 and r.used[-1] == 0
    assert r.queue.max() > 0  # the cluster was full at some point: pods waited and were retried


def test_online_learns_each_pod_once_however_often_it_is_retried() -> None:
    nodes = _one_node(1)
    rows = [("a", 1, 1000, "LS", 0, 100)] + [(f"w{k}", 1, 500, "LS", 1 + k, 10) for k in range(5)]
    text = HEAD + "".join(f"{n},1000,1024,{g},{m},,{q},Running,{c},{c + d},{c}\n" for n, g, m, q, c, d in rows)
    pods = parse_pods(text, nodes.models, "p.csv")
    strategy = STRATEGIES["online"]()
    r = replay_timeline(nodes, workload(pods, parse_times(text, "p.csv")), strategy, 1, check=True)
    assert r.never_placed == 0
    assert sum(strategy.seen.values()) == 6  # type: ignore[attr-defined]


def _openb_slice(n_nodes: int, n_pods: int) -> tuple[Nodes, str]:
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "data" / "openb"
    node_lines = (root / "openb_node_list_gpu_node.csv").read_text().splitlines()
    nodes = parse_nodes("\n".join(node_lines[: n_nodes + 1]) + "\n", "nodes.csv")
    pod_lines = (root / "openb_pod_list_default.csv").read_text().splitlines()
    return nodes, "\n".join(pod_lines[: n_pods + 1]) + "\n"


@pytest.mark.parametrize("name", ["random", "first-fit", "best-fit", "gpu-packing", "fgd", "online"])
def test_without_departures_it_places_what_the_protocol_places(name: str) -> None:
    """Compared: which pods are placed and the GPU milli in use after the last arrival, between the FGD
    protocol (``Replay`` with ``--target 0``: the pod list shuffled by the seed, each pod tried once) and the
    timeline with the pods' creation times set to that shuffled order, runs far longer than all arrivals
    (no departure before the last arrival) and ``load`` 1e6 (arrivals 1 us apart). A pod that fails waits,
    but with nothing departing it is never retried, so the two agree pod for pod. (``batch`` differs by
    design: the protocol solves 64 future arrivals jointly, the timeline each instant's pods.)"""
    nodes, text = _openb_slice(40, 400)  # 400 pods on 40 nodes: about 3x the GPUs, so many fail
    pods = parse_pods(text, nodes.models, "p.csv")
    seed = 7
    protocol = Replay(nodes, pods, target=0.0).run(STRATEGIES[name](), seed, check=True)
    order = arrival_order(pods, nodes.total_gpu_milli, seed, 0.0)
    position = np.empty(pods.count, dtype=np.int64)
    position[order] = np.arange(pods.count)
    lines = text.splitlines()
    timed = HEAD + "".join(
        ",".join(lines[1 + i].split(",")[:8] + [str(position[i]), str(position[i] + 10**9), str(position[i])]) + "\n"
        for i in range(pods.count)
    )
    work = workload(pods, parse_times(timed, "p.csv"), load=1e6)
    assert work.skipped == 0 and (work.pods.cpu == pods.cpu[order]).all()
    r = replay_timeline(nodes, work, STRATEGIES[name](), seed, check=True, typical_pods=pods)
    assert protocol.placed.sum() < pods.count  # the comparison covers failures
    placed_by_then = r.placed_at <= r.last_arrival  # later, departures let waiting pods in
    assert placed_by_then.tolist() == protocol.placed.tolist()
    at_last = int(np.searchsorted(r.t, r.last_arrival, side="right")) - 1
    assert r.used[at_last] / r.capacity * 100 == pytest.approx(protocol.final_allocation)


def test_load_divides_the_gaps_and_repeat_lays_copies_end_to_end() -> None:
    nodes = _one_node(1)
    text = HEAD + "a,1,1,0,0,,LS,Running,100,150,100\nb,1,1,0,0,,LS,Running,300,350,300\n"
    pods = parse_pods(text, nodes.models, "p.csv")
    w = workload(pods, parse_times(text, "p.csv"), load=4.0, repeat=2)
    # span 200 s, one mean gap 200 s: the second copy starts 400 s after the first; all divided by 4
    assert w.arrival.tolist() == [0.0, 50.0, 100.0, 150.0]
    assert w.duration.tolist() == [50.0] * 4


def test_pending_rows_without_a_scheduled_time_are_left_out_and_counted() -> None:
    nodes = _one_node(1)
    text = HEAD + "a,1,1,0,0,,LS,Running,0,50,0\nb,1,1,1,1000,,BE,Pending,5,7,\n"
    pods = parse_pods(text, nodes.models, "p.csv")
    w = workload(pods, parse_times(text, "p.csv"))
    assert w.count == 1 and w.skipped == 1 and w.pods.names == ("a",)


def test_the_fragmentation_meter_is_fgds_measure() -> None:
    nodes = parse_nodes(NODES_CSV, "n.csv")
    pods = parse_pods(TIMED_PODS, nodes.models, "p.csv")
    types = typical_types(type_counts(pods), 0.95)
    c = Cluster(nodes)
    c.gpu_free[1, :3] = [200, 1000, 0]
    c.cpu_free[0] = 500
    want = frag.fgd(c.cpu_free, c.model_bits, c.gpu_free, types)
    assert FragMeter(types).nodes(c.cpu_free, c.model_bits, c.gpu_free) == pytest.approx(want)


def _mig_replay(rows: list[tuple[str, int, int, str, float, float]], strategy: str) -> TimelineResult:
    from gpupolicy.solver.simulate.timeline_mig import replay_timeline_mig

    nodes = parse_nodes("sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,1,H100\n", "n.csv")
    text = HEAD + "".join(f"{n},1000,1024,{g},{m},,{q},Running,{c:g},{c + d:g},{c:g}\n" for n, g, m, q, c, d in rows)
    pods = parse_pods(text, nodes.models, "p.csv")
    return replay_timeline_mig(nodes, workload(pods, parse_times(text, "p.csv")), strategy, 1, check=True)


@pytest.mark.parametrize("strategy", ["first-fit", "online", "batch"])
def test_a_mig_instance_is_recreated_after_a_departure(strategy: str) -> None:
    """One H100: a 4g.40gb (its only placement: memory slots 0-3) runs 0-100; a second 4g arrives at 10
    and waits, while a 3g.40gb arriving at 20 fits beside the first at once (slots 4-7). When the first
    leaves at 100 its instance is destroyed and the waiting pod's 4g is created in the same slots."""
    rows = [("a", 1, 470, "LS", 0, 100), ("b", 1, 470, "LS", 10, 50), ("c", 1, 320, "LS", 20, 200)]
    r = _mig_replay(rows, strategy)
    assert r.wait.tolist() == [0.0, 90.0, 0.0]
    assert r.capacity == 7
    assert r.used.tolist() == [4.0, 4.0, 7.0, 7.0, 3.0, 0.0]  # at 0, 10, 20, 100, 150, 220


def test_mig_whole_gpu_pods_wait_for_an_empty_gpu() -> None:
    rows = [("s", 1, 100, "LS", 0, 30), ("w", 1, 1000, "LS", 1, 10), ("t", 1, 100, "BE", 2, 5)]
    r = _mig_replay(rows, "first-fit")
    # w needs the GPU unpartitioned: it waits for s (30) and t (7) to leave
    assert r.wait.tolist() == [0.0, 29.0, 0.0]


@pytest.mark.parametrize(
    ("trace", "pending"), [("default", 897), ("cpu050", 878), ("gpushare40", 981), ("gpuspec10", 897)]
)
def test_the_shipped_traces_with_times_parse(trace: str, pending: int) -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "data" / "openb" / f"openb_pod_list_{trace}.csv").read_text()
    times = parse_times(text, trace)
    assert int((~times.kept).sum()) == pending  # the Pending rows: no scheduled_time
    assert (times.duration[times.kept] > 0).all()
    assert set(times.qos) == {"LS", "BE", "Burstable", "Guaranteed"}


@pytest.mark.parametrize("name", ["first-fit", "best-fit", "fgd", "online", "random"])
def test_retrying_only_pods_that_fit_a_freed_node_changes_nothing(name: str) -> None:
    """The engine retries, after a departure, only the waiting pods that still fit on a node that gained
    capacity. Against retrying every waiting pod in queue order (kube-scheduler's requeue of all of them):
    the same pods are placed at the same instants, with far fewer attempts."""
    from gpupolicy.solver.simulate.strategies import Context
    from gpupolicy.solver.simulate.timeline import Engine, OpenbBackend

    nodes, text = _openb_slice(12, 500)
    pods = parse_pods(text, nodes.models, "p.csv")
    work = workload(pods, parse_times(text, "p.csv"), load=3000.0)
    runs = []
    for every in (False, True):
        strategy = STRATEGIES[name]()
        cluster = Cluster(nodes)
        rng = np.random.default_rng(11)
        typical = typical_types(type_counts(work.pods), 0.95)
        strategy.reset(Context(cluster, work.pods, rng, typical, np.arange(nodes.count, dtype=np.int64)))
        runs.append(Engine(work, OpenbBackend(cluster, work.pods, strategy, typical), True, every_retry=every).run(1))
    fast, slow = runs
    assert slow.queue.max() > 20  # a real queue
    assert np.array_equal(fast.placed_at, slow.placed_at, equal_nan=True)
    assert fast.retries < slow.retries
