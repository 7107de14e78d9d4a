from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugin.cli.main import main
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


def test_missing_file_is_a_diagnostic(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, p = files
    rc = main(["simulate", "--nodes", "/nonexistent.csv", "--pods", str(p), "--strategy", "random"])
    assert rc == 1
    assert "nodes_unreadable" in capsys.readouterr().err


def test_bad_seeds_is_a_usage_error(files: tuple[Path, Path]) -> None:
    n, p = files
    assert main(["simulate", "--nodes", str(n), "--pods", str(p), "--strategy", "random", "--seeds", "x"]) == 2
