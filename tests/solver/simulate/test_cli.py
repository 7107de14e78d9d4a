from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gpupolicy.plugin.cli.main import main
from tests.solver.simulate.conftest import NODES_CSV, PODS_CSV

KEYS = {
    "strategy",
    "trace",
    "seeds",
    "allocation_at_130",
    "allocation_at_130_per_seed",
    "curve",
    "failed_pods",
    "seconds",
}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    n, p = tmp_path / "nodes.csv", tmp_path / "openb_pod_list_tiny.csv"
    n.write_text(NODES_CSV)
    p.write_text(PODS_CSV)
    return n, p


def test_json_has_the_documented_keys(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    n, p = files
    rc = main(["simulate", "--nodes", str(n), "--pods", str(p), "--strategy", "fgd", "--seeds", "1-2", "-o", "json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= KEYS
    assert doc["strategy"] == "fgd" and doc["trace"] == "tiny" and doc["seeds"] == [1, 2]
    assert len(doc["curve"]) == 131
    assert len(doc["allocation_at_130_per_seed"]) == 2


def test_several_strategies_and_a_plot(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n, p = files
    png = tmp_path / "out.png"
    argv = ["simulate", "--nodes", str(n), "--pods", str(p), "--strategy", "online", "--strategy", "best-fit"]
    assert main([*argv, "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "online" in out and "best-fit" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_ceiling_reports_the_bound_next_to_the_allocation(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    n, p = files
    argv = ["simulate", "--nodes", str(n), "--pods", str(p), "--strategy", "first-fit", "--seeds", "1-3"]
    assert main([*argv, "--ceiling", "-o", "json"]) == 0  # default: what it placed before 95% arrived
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["ceiling_at_130_per_seed"]) == 3
    assert doc["ceiling_exact"] is True
    for curve, bound in zip(doc["curve_per_seed"], doc["ceiling_at_130_per_seed"], strict=True):
        assert max(v for v in curve if v is not None) <= bound <= 100  # a tiny trace leaves some buckets empty
    assert main([*argv, "--ceiling"]) == 0
    assert "ceiling %" in capsys.readouterr().out
    assert main([*argv]) == 0
    assert "ceiling" not in capsys.readouterr().out
    assert main([*argv, "--ceiling", "-3"]) == 2
    assert "--ceiling takes an arrived percent" in capsys.readouterr().err


def test_ceiling_does_not_apply_to_mig(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    n, p = files
    argv = ["simulate", "--nodes", str(n), "--pods", str(p), "--strategy", "online", "--mig", "--ceiling"]
    assert main(argv) == 2
    assert "--ceiling does not apply to --mig" in capsys.readouterr().err


def test_missing_file_is_a_diagnostic(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, p = files
    rc = main(["simulate", "--nodes", "/nonexistent.csv", "--pods", str(p), "--strategy", "random"])
    assert rc == 1
    assert "nodes_unreadable" in capsys.readouterr().err


POD_HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"


@pytest.mark.parametrize(
    ("nodes_text", "pods_text", "extra", "code", "bad_file"),
    [
        (None, POD_HEADER, [], "csv_empty", "pods"),
        ("sn,cpu_milli,memory_mib,gpu,model\nn0,32000,65536,0,\n", None, [], "nodes_no_gpus", "nodes"),
        ("sn,cpu_milli,memory_mib,gpu,model\nn0,32000,65536,0,\n", None, ["--mig"], "nodes_no_gpus", "nodes"),
        (None, POD_HEADER + "c0,4000,1024,0,0,\nc1,2000,512,0,0,\n", [], "pods_no_gpu_demand", "pods"),
    ],
)
def test_inputs_the_protocol_cannot_replay_are_located_errors(
    files: tuple[Path, Path],
    nodes_text: str | None,
    pods_text: str | None,
    extra: list[str],
    code: str,
    bad_file: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    n, p = files
    if nodes_text is not None:
        n.write_text(nodes_text)
    if pods_text is not None:
        p.write_text(pods_text)
    argv = ["simulate", "--nodes", str(n), "--pods", str(p), "--strategy", "online", "--seeds", "1", *extra]
    assert main(argv) == 1  # before the fix: a traceback, or (no GPU demand) a loop that never ended
    err = capsys.readouterr().err
    assert f"{n if bad_file == 'nodes' else p}:1:1: {code}" in err
    assert "Traceback" not in err


def test_cpu_only_pods_replay_as_they_are_with_target_zero(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    n, p = files
    p.write_text(POD_HEADER + "c0,4000,1024,0,0,\nc1,2000,512,0,0,\n")
    argv = ["simulate", "--nodes", str(n), "--pods", str(p), "--strategy", "fgd", "--seeds", "1", "--target", "0"]
    assert main([*argv, "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["failed_pods_total"] == 0 and doc["allocation_at_130"] is None


def test_a_byte_order_mark_before_the_header_is_ignored(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    n, p = files
    n.write_bytes(b"\xef\xbb\xbf" + NODES_CSV.replace("\n", "\r\n").encode())  # as a spreadsheet saves it
    p.write_bytes(b"\xef\xbb\xbf" + PODS_CSV.encode())
    argv = ["simulate", "--nodes", str(n), "--pods", str(p), "--strategy", "fgd", "--seeds", "1", "-o", "json"]
    assert main(argv) == 0  # before: csv_missing_column "sn" / "name"
    assert json.loads(capsys.readouterr().out)["allocation_at_130"] is not None


def test_bad_seeds_is_a_usage_error(files: tuple[Path, Path]) -> None:
    n, p = files
    assert main(["simulate", "--nodes", str(n), "--pods", str(p), "--strategy", "random", "--seeds", "x"]) == 2


def test_mig_variant_json_for_every_mig_strategy(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n, p = files
    png = tmp_path / "mig.png"
    argv = ["simulate", "--nodes", str(n), "--pods", str(p), "--mig", "--seeds", "1-2", "-o", "json"]
    argv += ["--plot", str(png)]
    assert main([*argv, "--strategy", "first-fit", "--strategy", "online", "--strategy", "batch"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["strategy"] for d in docs] == ["first-fit", "online", "batch"]
    for d in docs:
        assert d["variant"] == "mig-h100-80gb" and len(d["slices_in_use_at_130_per_seed"]) == 2
        # the tiny trace may never reach the 130 % bucket (null then), but its end state is known
        assert all(x is None or 0 < x <= 100 for x in d["slices_in_use_at_130_per_seed"])
        assert all(0 < x <= 100 for x in d["slices_in_use_final_per_seed"])
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_mig_variant_refuses_strategies_it_lacks(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    n, p = files
    assert main(["simulate", "--nodes", str(n), "--pods", str(p), "--mig", "--strategy", "fgd"]) == 2
    assert "supports first-fit, online and batch" in capsys.readouterr().err


STRANDS = Path(__file__).resolve().parents[3] / "examples" / "first-fit-strands"
CLAIM_KEYS = {"strategy", "trace", "curve", "failed_pods", "seconds", "placed", "gpus", "allocation"}


def _claims_argv(*strategies: str) -> list[str]:
    argv = ["simulate", "--inventory", str(STRANDS / "cluster.yaml"), "--claims", str(STRANDS / "claims.yaml")]
    argv += ["--policy", str(STRANDS / "policy.yaml")]
    for s in strategies:
        argv += ["--strategy", s]
    return argv


def test_claims_mode_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_claims_argv("first-fit", "online"), "-o", "json"]) == 0
    first, online = json.loads(capsys.readouterr().out)
    assert set(first) >= CLAIM_KEYS and set(online) >= CLAIM_KEYS
    assert first["failed_pods"] == ["default/b-four-g"] and first["placed"] == 1
    assert online["failed_pods"] == [] and online["placed"] == 2
    assert online["gpus"] == {"full": 1, "partial": 0, "idle": 0, "total": 1}
    assert len(online["curve"]) == 3 and online["curve"][-1] == 100.0


def test_claims_mode_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "claims.png"
    assert main([*_claims_argv("first-fit", "batch"), "--window", "2", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "first-fit: not placed: default/b-four-g (not_placed)" in out
    assert "batch: not placed" not in out
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("mode", ["openb", "claims"])
def test_plot_without_matplotlib_is_a_usage_error_before_the_replay(
    mode: str,
    files: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """matplotlib is the optional extra gpupolicy[plot]; None in sys.modules makes its import fail."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    n, p = files
    png = tmp_path / "out.png"
    if mode == "claims":
        argv = _claims_argv("first-fit")
    else:
        argv = ["simulate", "--nodes", str(n), "--pods", str(p), "--strategy", "first-fit"]
    assert main([*argv, "--plot", str(png)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and not png.exists()  # nothing replayed
    assert err == (
        "gpupolicy simulate: error: plot_unavailable: --plot needs matplotlib, which is not installed;"
        " install the extra: pip install 'gpupolicy[plot]'\n"
    )


def test_claims_mode_without_the_policy_reports_the_missing_classes(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--inventory", str(STRANDS / "cluster.yaml"), "--claims", str(STRANDS / "claims.yaml")]
    assert main([*argv, "--strategy", "online"]) == 0
    assert "default/a-three-g (device_class_not_found)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "fgd"], "strategies are first-fit, best-fit, online, batch"),
        (["--strategy", "online", "--nodes", "n.csv"], "not both"),
        (["--strategy", "online", "--window", "0"], "--window must be an integer in [1, 1000000], not 0"),
        (["--strategy", "online", "--mig"], "openb mode only"),
    ],
)
def test_claims_mode_usage_errors(extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_claims_argv(), *extra]) == 2
    assert message in capsys.readouterr().err


def test_neither_mode_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--strategy", "online"]) == 2
    assert "--inventory FILE... --claims FILE..." in capsys.readouterr().err


def test_claims_mode_unreadable_file(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--inventory", "/nonexistent.yaml", "--claims", str(STRANDS / "claims.yaml")]
    assert main([*argv, "--strategy", "online"]) == 1
    assert "file_unreadable" in capsys.readouterr().err
