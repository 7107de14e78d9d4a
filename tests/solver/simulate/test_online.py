"""``online`` strategy rules that a user of the replay would notice."""

from __future__ import annotations

import numpy as np
import pytest

from solver.simulate.cluster import Cluster
from solver.simulate.online import Online, OnlineConfig
from solver.simulate.protocol import type_counts, typical_types
from solver.simulate.strategies import Context
from solver.simulate.trace import parse_nodes, parse_pods


def _replay(nodes_csv: str, pods_csv: str, config: OnlineConfig) -> list[int | None]:
    """Place every pod in file order; the node index of each, None where it failed."""
    nodes = parse_nodes(nodes_csv, "nodes.csv")
    pods = parse_pods(pods_csv, nodes.models, "pods.csv")
    cluster = Cluster(nodes)
    rank = np.arange(nodes.count, dtype=np.int64)
    strategy = Online(config)
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


# 20 nodes of 32 cores with one GPU each; one GPU pod sets the CPU per GPU milli learned (2 cores
# per GPU), a 30-core CPU-only pod sets the largest CPU-only request, then 40 small CPU-only pods
# and, last, another 30-core one.
NODES = "sn,cpu_milli,memory_mib,gpu,model\n" + "".join(f"n{k},32000,131072,1,T4\n" for k in range(20))
PODS = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
    "g,2000,4096,1,1000,\n"
    "big0,30000,8192,0,0,\n" + "".join(f"s{k},4000,4096,0,0,\n" for k in range(40)) + "big1,30000,8192,0,0,\n"
)


@pytest.mark.parametrize(("keep_holes", "big_placed"), [(0.0, False), (0.1, True)])
def test_cpu_only_pods_keep_a_hole_for_the_largest_cpu_only_pod(keep_holes: float, big_placed: bool) -> None:
    placed = _replay(NODES, PODS, OnlineConfig(keep_holes=keep_holes))
    assert all(n is not None for n in placed[:-1])
    # spreading alone wears every node below 30 free cores; keeping holes leaves one
    assert (placed[-1] is not None) is big_placed


def test_small_cpu_only_pods_spread_while_holes_are_plenty() -> None:
    placed = _replay(NODES, PODS, OnlineConfig())
    small = placed[2:12]
    # the first ten small pods land on ten different nodes (most spare CPU first), not stacked
    assert len(set(small)) == 10
