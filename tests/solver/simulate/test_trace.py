from __future__ import annotations

import pytest

from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.solver.simulate.trace import Nodes, Pods, parse_nodes, parse_pods


def test_nodes_are_parsed_with_models_and_capacity(nodes: Nodes) -> None:
    assert nodes.names == ("n0", "n1", "n2")
    assert nodes.models == ("T4", "V100")
    assert nodes.model.tolist() == [0, 1, -1]
    assert nodes.total_gpu_milli == 6000
    assert nodes.model_bits().tolist() == [1, 2, 0]


def test_pods_cap_shares_and_mask_models(pods: Pods) -> None:
    assert pods.gpu_request.tolist() == [500, 500, 1000, 2000, 0, 250]
    assert pods.spec_mask.tolist() == [3, 3, 1, 2, 3, 3]
    assert pods.kind().tolist() == ["share", "share", "1gpu", "2gpu", "cpu", "share"]


def test_gpus_without_a_model_serve_pods_without_a_gpu_spec() -> None:
    nodes = parse_nodes("sn,cpu_milli,memory_mib,gpu,model\na,8000,1024,2,\nb,8000,1024,1,T4\nc,8000,1024,0,\n")
    assert nodes.models == ("", "T4") and nodes.model.tolist() == [0, 1, -1]  # before: a's GPUs had no model
    pods = parse_pods(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\nany,1,1,1,500,\nt4,1,1,1,500,T4\n", nodes.models
    )
    assert pods.spec_mask.tolist() == [0b11, 0b10]


def test_gpu_milli_above_1000_is_capped(nodes: Nodes) -> None:
    pods = parse_pods("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,1,1500\n", nodes.models)
    assert pods.milli.tolist() == [1000]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("name,cpu_milli\np,1\n", "csv_missing_column"),
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,x,1,1,100\n", "csv_bad_number"),
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,1,0\n", "pod_zero_gpu_milli"),
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,2,500\n", "pod_shared_multi_gpu"),
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,-1,1,0,0\n", "csv_negative"),
        # before: an OverflowError traceback, or arrays sized by the number
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,100000000000000000000000,1,0,0\n", "csv_out_of_range"),
        ("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,9223372036854775807,1000\n", "csv_out_of_range"),
    ],
)
def test_bad_pod_rows_give_located_diagnostics(nodes: Nodes, text: str, code: str) -> None:
    with pytest.raises(DiagnosticError) as err:
        parse_pods(text, nodes.models, "pods.csv")
    d = err.value.diagnostics[0]
    assert d.code == code
    assert d.location.file == "pods.csv"
    assert d.location.line >= 1


def test_a_node_with_more_gpus_than_a_node_has_is_an_error() -> None:
    with pytest.raises(DiagnosticError) as err:
        parse_nodes("sn,cpu_milli,memory_mib,gpu,model\nn0,64000,1024,100000000000,A\n", "n.csv")
    found = err.value.diagnostics[0]
    assert found.code == "csv_out_of_range" and found.location.line == 2


def test_empty_node_list_is_an_error() -> None:
    with pytest.raises(DiagnosticError) as err:
        parse_nodes("sn,cpu_milli,memory_mib,gpu,model\n", "n.csv")
    assert err.value.diagnostics[0].code == "csv_empty"
