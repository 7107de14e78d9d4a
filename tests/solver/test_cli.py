"""``gpupolicy solve`` end to end: golden outputs for every example and for tests/solver/cases,
exit codes, and every answer re-verified. ``UPDATE_GOLDEN=1`` rewrites the golden files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gpupolicy.plugin.cli.main import main

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
CASES = Path(__file__).parent / "cases"
EXAMPLES = sorted(
    p for p in (REPO / "examples").glob("*") if (p / "claims.yaml").exists() and (p / "cluster.yaml").exists()
)


def example_args(example: Path) -> list[str]:
    args = ["solve", "--inventory", str(example / "cluster.yaml"), "--claims", str(example / "claims.yaml")]
    if (example / "policy.yaml").exists():
        args += ["--policy", str(example / "policy.yaml")]
    if (example / "solve.args").exists():  # flags the example is about (e.g. --preempt)
        args += (example / "solve.args").read_text().split()
    return args


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        code = main([*args, "--no-timing", "--workers", "1", "--seed", "0"])
    finally:
        os.chdir(cwd)
    return code, capsys.readouterr().out


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text()


def relative(args: list[str]) -> list[str]:
    return [str(Path(a).relative_to(REPO)) if a.startswith(str(REPO)) else a for a in args]


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
@pytest.mark.parametrize("output", ["table", "json"])
def test_examples_golden(example: Path, output: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run_cli([*relative(example_args(example)), "-o", output, "--explain"], capsys)
    check_golden(f"{example.name}.{output}", text)
    if output == "json":
        doc = json.loads(text)
        assert code == (0 if not doc["unplaced"] else 1)
        assert doc["summary"]["placed"] + len(doc["unplaced"]) == doc["summary"]["claims"]


def test_first_fit_strands_a_claim_the_solver_places(capsys: pytest.CaptureFixture[str]) -> None:
    example = REPO / "examples" / "first-fit-strands"
    if not example.exists():
        pytest.skip("example not written yet")
    args = relative(example_args(example))
    assert run_cli([*args, "-o", "json"], capsys)[0] == 0
    code, text = run_cli([*args, "--strategy", "first-fit", "-o", "json"], capsys)
    assert code == 1
    [unplaced] = json.loads(text)["unplaced"]
    assert unplaced["reasons"][0]["code"] == "counters_exhausted"
    code, text = run_cli([*args, "--compare", "first-fit"], capsys)
    check_golden("first-fit-strands.compare", text)


def test_case_golden_and_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["solve", "--inventory", "tests/solver/cases/inventory.yaml", "--claims", "tests/solver/cases/claims.yaml"]
    code, text = run_cli([*args, "--explain"], capsys)
    assert code == 1
    check_golden("case.table", text)
    code, text = run_cli([*args, "-o", "yaml"], capsys)
    check_golden("case.yaml", text)
    code, text = run_cli([*args, "-o", "wide", "--strategy", "best-fit"], capsys)
    check_golden("case.best-fit.wide", text)


def test_usage_and_input_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["solve", "--inventory", "x.yaml", "--claims", "y.yaml", "--strategy", "random"])
    assert exc.value.code == 2
    capsys.readouterr()
    code = main(["solve", "--inventory", "missing.yaml", "--claims", str(CASES / "claims.yaml")])
    assert code == 1
    assert "missing.yaml:0:0: file_unreadable: cannot read missing.yaml" in capsys.readouterr().err
    code = main(
        [
            "solve",
            "--inventory",
            str(CASES / "claims.yaml"),
            "--claims",
            str(CASES / "inventory.yaml"),
            "--time-limit",
            "0",
        ]
    )
    assert code == 2
