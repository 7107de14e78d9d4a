from __future__ import annotations

import pytest

from gpupolicy.solver.simulate.trace import Nodes, Pods, parse_nodes, parse_pods

NODES_CSV = """sn,cpu_milli,memory_mib,gpu,model
n0,16000,65536,2,T4
n1,32000,131072,4,V100
n2,8000,32768,0,
"""

PODS_CSV = """name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec
p0,4000,8192,1,500,
p1,4000,8192,1,500,
p2,2000,4096,1,1000,T4
p3,8000,16384,2,1000,V100
p4,1000,1024,0,0,
p5,1000,2048,1,250,
"""


@pytest.fixture
def nodes() -> Nodes:
    return parse_nodes(NODES_CSV, "nodes.csv")


@pytest.fixture
def pods(nodes: Nodes) -> Pods:
    return parse_pods(PODS_CSV, nodes.models, "pods.csv")
