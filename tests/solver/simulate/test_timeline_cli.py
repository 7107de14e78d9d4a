"""``gpupolicy simulate --timeline``: output shape, bad time columns, option ranges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupolicy.plugin.cli.main import main
from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.solver.simulate.times import parse_times
from tests.solver.simulate.conftest import NODES_CSV
from tests.solver.simulate.test_timeline import HEAD, TIMED_PODS


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    n, p = tmp_path / "nodes.csv", tmp_path / "openb_pod_list_timed.csv"
    n.write_text(NODES_CSV)
    p.write_text(TIMED_PODS)
    return n, p


def _argv(files: tuple[Path, Path], *more: str) -> list[str]:
    n, p = files
    return ["simulate", "--timeline", "--nodes", str(n), "--pods", str(p), *more]


def test_json_has_the_documented_keys(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    argv = _argv(
        files, "--strategy", "online", "--strategy", "first-fit", "--seeds", "1-2", "--load", "2", "-o", "json"
    )
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["trace"] == "timed" and doc["load"] == 2.0 and doc["seeds"] == [1, 2]
    assert set(doc["strategies"]) == {"online", "first-fit"}
    for s in doc["strategies"].values():
        assert {"allocation_mean", "wait_mean_s", "wait_p99_s", "never_placed", "evictions"} <= set(s)
        assert {"wait_p50_s", "wait_p95_s", "fragmentation_mean", "allocation_mean_sd", "per_priority"} <= set(s)
        assert s["never_placed"] == 0 and s["evictions"] == 0 and s["placed"] == 10
        assert 0 < s["allocation_mean"] <= 100
        assert set(s["per_priority"]) == {"3", "2", "1"}  # LS, Burstable, BE
        assert s["per_priority"]["3"]["qos"] == ["LS"]
        assert set(s["per_kind"]) == {"cpu", "share", "1gpu", "2gpu", "4gpu"}
        assert sum(k["pods"] for k in s["per_kind"].values()) == 10
        assert len(s["series"]["t_s"]) == len(s["series"]["allocation"]) == len(s["series"]["queue"]) == 200
        assert len(s["series"]["wait_cdf_s"]) == 101
    assert doc["strategies"]["first-fit"]["wait_p99_s"] > 0  # pods waited on this small cluster


def test_table_and_plot(files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "t.png"
    assert main(_argv(files, "--strategy", "fgd", "--strategy", "best-fit", "--plot", str(png))) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "trace timed, load 1, repeat 1, seeds 1"
    assert out[1].split()[:3] == ["strategy", "alloc", "%"]
    assert out[2].startswith("fgd ") and out[3].startswith("best-fit ")
    assert "3 (LS)" in out[-1] and "1 (BE)" in out[-1]
    assert png.read_bytes()[:4] == b"\x89PNG"


BAD = [
    ("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,0,0\n", "csv_missing_column", 1),
    (HEAD + "p,1,1,0,0,,LS,Running,x,10,0\n", "csv_bad_number", 2),
    (HEAD + "p,1,1,0,0,,LS,Running,-5,10,0\n", "csv_negative", 2),
    (HEAD + "p,1,1,0,0,,LS,Running,nan,10,0\n", "csv_out_of_range", 2),
    (HEAD + "p,1,1,0,0,,LS,Running,0,10,0\nq,1,1,0,0,,LS,Running,1,3,4\n", "time_reversed", 3),  # deletion < sched
    (HEAD + "p,1,1,0,0,,LS,Running,5,10,4\n", "time_reversed", 2),  # scheduled < creation
    (HEAD + "p,1,1,0,0,,LS,Pending,5,4,\n", "time_reversed", 2),  # deletion < creation, never scheduled
    (HEAD + "p,1,1,0,0,,LS,Running,0,7,7\n", "time_zero_duration", 2),
    (HEAD + "p,1,1,0,0,,LS,Running,,7,0\n", "time_missing", 2),
    (HEAD + "p,1,1,0,0,,VIP,Running,0,7,0\n", "qos_unknown", 2),
]


@pytest.mark.parametrize(("text", "code", "line"), BAD)
def test_bad_times_are_located(text: str, code: str, line: int) -> None:
    with pytest.raises(DiagnosticError) as err:
        parse_times(text, "pods.csv")
    d = err.value.diagnostics[0]
    assert (d.code, d.location.file, d.location.line) == (code, "pods.csv", line)


def test_bad_times_exit_1_with_a_located_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n, p = tmp_path / "nodes.csv", tmp_path / "pods.csv"
    n.write_text(NODES_CSV)
    p.write_text(HEAD + "p,1,1,0,0,,LS,Running,0,10,0\nq,1,1,0,0,,LS,Running,1,3,4\n")
    assert main(["simulate", "--timeline", "--nodes", str(n), "--pods", str(p), "--strategy", "online"]) == 1
    err = capsys.readouterr().err
    assert f"{p}:3:1: time_reversed: deletion_time 3 is before scheduled_time 4 (at deletion_time)" in err


def test_a_pod_list_without_times_is_a_located_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n, p = tmp_path / "nodes.csv", tmp_path / "pods.csv"
    n.write_text(NODES_CSV)
    p.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,1,500\n")
    assert main(["simulate", "--timeline", "--nodes", str(n), "--pods", str(p), "--strategy", "first-fit"]) == 1
    assert f"{p}:1:1: csv_missing_column: missing column(s) creation_time" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (["--load", "0"], "--load must be a number in (0, 1e+09], not 0"),
        (["--load", "nan"], "--load must be a number"),
        (["--load", "-2"], "--load must be a number"),
        (["--load", "1e10"], "--load must be a number"),
        (["--repeat", "0"], "--repeat must be an integer in [1, 1000], not 0"),
        (["--ceiling"], "--ceiling does not apply to --timeline"),
        (["--mig", "--strategy", "fgd"], "--mig supports first-fit, online and batch, not fgd"),
    ],
)
def test_usage_errors_exit_2(
    files: tuple[Path, Path], more: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_argv(files, "--strategy", "online", *more)) == 2
    assert message in capsys.readouterr().err


def test_load_without_timeline_is_a_usage_error(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    n, p = files
    assert main(["simulate", "--nodes", str(n), "--pods", str(p), "--strategy", "online", "--load", "3"]) == 2
    assert "--load and --repeat apply to --timeline only" in capsys.readouterr().err


def test_mig_timeline_reports_compute_slices(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_argv(files, "--mig", "--strategy", "first-fit", "--strategy", "online", "-o", "json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["variant"] == "mig-h100-80gb"
    for s in doc["strategies"].values():
        assert s["placed"] + s["never_placed"] == 10 and 0 < s["allocation_mean"] <= 100


def test_a_pod_list_where_no_pod_ran_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n, p = tmp_path / "nodes.csv", tmp_path / "pods.csv"
    n.write_text(NODES_CSV)
    p.write_text(HEAD + "p,1,1,1,500,,BE,Pending,0,10,\n")
    assert main(["simulate", "--timeline", "--nodes", str(n), "--pods", str(p), "--strategy", "online"]) == 1
    assert f"{p}:1:1: pods_no_run_times: no row has a scheduled_time" in capsys.readouterr().err
