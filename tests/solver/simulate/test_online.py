"""``online`` strategy rules that a user of the replay would notice."""

from __future__ import annotations

import numpy as np
import pytest

from gpupolicy.solver.simulate.cluster import Cluster
from gpupolicy.solver.simulate.online import Online, OnlineConfig
from gpupolicy.solver.simulate.protocol import type_counts, typical_types
from gpupolicy.solver.simulate.strategies import Context, FirstFit, Strategy
from gpupolicy.solver.simulate.trace import parse_nodes, parse_pods


def _replay(nodes_csv: str, pods_csv: str, strategy: Strategy) -> list[int | None]:
    """Place every pod in file order; the node index of each, None where it failed."""
    nodes = parse_nodes(nodes_csv, "nodes.csv")
    pods = parse_pods(pods_csv, nodes.models, "pods.csv")
    cluster = Cluster(nodes)
    rank = np.arange(nodes.count, dtype=np.int64)
    strategy.reset(Context(cluster, pods, np.random.default_rng(0), typical_types(type_counts(pods)), rank))
    out: list[int | None] = []
    for i in range(pods.count):
        p = strategy.place(i)
        if p is not None:
            cluster.place(pods, i, p)
            strategy.commit(i, p)
        out.append(None if p is None else p.node)
    cluster.check()
    return out


# A GPU node first in node order and a CPU-only node after it. One GPU pod teaches the CPU per
# GPU milli; a CPU-only pod that took the GPU node's CPU would strand its second GPU.
NODES = "sn,cpu_milli,memory_mib,gpu,model\ngpu,16000,65536,2,T4\ncpu,64000,262144,0,\n"
PODS = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
    "g0,6000,8192,1,1000,\n"
    "c0,8000,8192,0,0,\n"
    "g1,6000,8192,1,1000,\n"
)


@pytest.mark.parametrize(("strategy", "placed"), [(FirstFit(), [0, 0, None]), (Online(), [0, 1, 0])])
def test_cpu_only_pods_leave_the_cpu_that_idle_gpus_need(strategy: Strategy, placed: list[int | None]) -> None:
    assert _replay(NODES, PODS, strategy) == placed


def test_cpu_only_pods_pack_in_node_order_where_no_gpu_needs_the_cpu() -> None:
    # the GPU node comes first in node order; its CPU is exactly what its idle GPUs will need
    nodes = "sn,cpu_milli,memory_mib,gpu,model\ng,96000,393216,8,G2\n"
    nodes += "".join(f"c{k},64000,262144,0,\n" for k in range(4))
    pods = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\ng0,12000,8192,1,1000,\n"
    pods += "".join(f"c{k},8000,8192,0,0,\n" for k in range(10))
    placed = _replay(nodes, pods, Online())
    # eight 8-core pods fill the first CPU node, the next two go to the second; none to the GPU node
    assert placed[1:] == [1] * 8 + [2, 2]


def test_shares_keep_their_gpu_on_track_to_an_efficient_pattern() -> None:
    # 4 GPUs on two nodes. The shares seen pack best as 470 + 470, 320 + 550 and 230 x 4; keeping
    # each GPU on track to one of those leaves room for the 650 at the end, FGD's score alone does not.
    nodes = "sn,cpu_milli,memory_mib,gpu,model\n" + "".join(f"n{k},64000,262144,2,T4\n" for k in range(2))
    sizes = [230, 320, 470, 470, 550, 470, 650]
    pods = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
    pods += "".join(f"p{k},1000,1024,1,{s},\n" for k, s in enumerate(sizes))
    with_patterns = _replay(nodes, pods, Online(OnlineConfig(patterns_first=2)))
    without = _replay(nodes, pods, Online(OnlineConfig(patterns_first=2, fill_patterns=False)))
    assert None not in with_patterns
    assert without[-1] is None  # the 650 finds no GPU with room


@pytest.mark.parametrize("name", ["online", "batch"])
def test_the_shares_a_strategy_tracks_are_the_shares_on_each_gpu(name: str) -> None:
    from gpupolicy.solver.simulate.replay import Replay
    from gpupolicy.solver.simulate.run import STRATEGIES

    nodes = parse_nodes("sn,cpu_milli,memory_mib,gpu,model\n" + "".join(f"n{k},64000,262144,4,T4\n" for k in range(3)))
    rng = np.random.default_rng(7)
    rows = [f"p{k},1000,1024,1,{int(rng.choice([230, 320, 470, 650, 810, 160]))}," for k in range(90)]
    pods = parse_pods("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n" + "\n".join(rows) + "\n", nodes.models)
    strategy = STRATEGIES[name]()
    assert isinstance(strategy, Online)
    strategy.config = OnlineConfig(patterns_first=8)  # learn early on this short trace
    Replay(nodes, pods, target=0.0).run(strategy, seed=3, check=True)
    cluster = strategy.cluster
    for n in range(nodes.count):
        for g in range(int(nodes.gpus[n])):
            assert sum(strategy.contents.get((n, g), ())) == 1000 - cluster.gpu_free[n, g]
