"""``gpupolicy discover`` with the simulated backend."""

from __future__ import annotations

import pytest
import yaml

from gpupolicy.plugin.cli.main import main


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--nvml", "sim:1xA100-40GB:mig=3g.20gb@4,1xL4", "--node-name", "n1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["MINOR", "UUID", "PRODUCT", "MEMORY", "ARCH", "CC", "PCI", "MIG", "MIG", "DEVICES"]
    assert "NVIDIA A100-SXM4-40GB" in lines[1] and lines[1].endswith("enabled  3g.20gb@4")
    assert "NVIDIA L4" in lines[2] and lines[2].split()[-2:] == ["-", "-"]


def test_yaml_slices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--nvml", "sim:2xH100-80GB", "--node-name", "n1", "-o", "yaml"]) == 0
    (obj,) = yaml.safe_load_all(capsys.readouterr().out)
    assert obj["kind"] == "ResourceSlice" and obj["spec"]["pool"]["name"] == "n1"
    assert [d["name"] for d in obj["spec"]["devices"]] == ["gpu-0", "gpu-1"]


def test_bad_spec_is_an_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--nvml", "sim:3xQ9000"]) == 1
    assert "unknown_gpu_model" in capsys.readouterr().err


def test_cli_modules_stay_light() -> None:
    """`gpupolicy --help` must not pay for the object models, grpc or NVML."""
    import subprocess
    import sys

    code = (
        "import sys, gpupolicy.plugin.cli.plugin_cmd as p, gpupolicy.plugin.cli.discover as d;"
        "import gpupolicy.policy.builder as b;"
        "heavy = [m for m in ('grpc', 'pynvml', 'kubernetes') if m in sys.modules];"
        "assert p.DEFAULT_DRIVER == d.DEFAULT_DRIVER == b.DEFAULT_DRIVER, heavy; assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_simulated_node_from_a_cluster_description_matches_render(capsys: pytest.CaptureFixture[str]) -> None:
    """`--nvml sim:@cluster.yaml` simulates one node of a cluster description: the plugin then publishes
    exactly the slices `gpupolicy render` shows for that node."""
    from pathlib import Path

    from gpupolicy.policy.cluster import load_cluster, render
    from gpupolicy.policy.k8s.dump import to_wire
    from gpupolicy.policy.policyfile.compile import load_policy

    example = Path(__file__).resolve().parents[2] / "examples" / "mig-inference"
    cluster_file, policy_file = example / "cluster.yaml", example / "policy.yaml"
    argv = ["discover", "--nvml", f"sim:@{cluster_file}", "--node-name", "h100-1", "--policy", str(policy_file)]
    assert main([*argv, "-o", "yaml"]) == 0
    published = [d["spec"] for d in yaml.safe_load_all(capsys.readouterr().out)]
    cluster = load_cluster(cluster_file.read_text(), str(cluster_file))
    _, slices = render(load_policy(policy_file.read_text(), str(policy_file)), cluster)
    rendered = [to_wire(s)["spec"] for s in slices if s.spec.node_name == "h100-1"]
    assert published == rendered and len(published) > 1


def test_unknown_node_of_a_cluster_description(capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    cluster_file = Path(__file__).resolve().parents[2] / "examples" / "mig-inference" / "cluster.yaml"
    assert main(["discover", "--nvml", f"sim:@{cluster_file}", "--node-name", "nope"]) == 1
    assert "unknown_node" in capsys.readouterr().err
