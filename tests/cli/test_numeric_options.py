"""Numeric options of ``solve`` and ``simulate`` outside their range are usage errors (exit 2) with a message.

NaN, infinities, negative numbers and sizes nobody means (a hundred million seeds, 100,000 CP-SAT
workers, ten thousand times the GPU capacity) used to be accepted silently, to end in a traceback,
or to eat the machine. ``simulate`` runs in a child with a memory cap (:mod:`tests.bounded`): before
the checks, ``--seeds 0-99999999`` died of MemoryError and ``--target inf`` looped forever.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupolicy.plugin.cli.main import main
from gpupolicy.solver.simulate.run import parse_seeds
from tests.bounded import gpupolicy
from tests.solver.simulate.conftest import NODES_CSV, PODS_CSV

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mig-inference"
SOLVE = ["solve", *("--inventory", str(EXAMPLE / "cluster.yaml"), "--claims", str(EXAMPLE / "claims.yaml"))]
STRANDS = ROOT / "examples" / "first-fit-strands"
CLAIMS_MODE = ["--inventory", str(STRANDS / "cluster.yaml"), "--claims", str(STRANDS / "claims.yaml")]

TIME = "--time-limit must be a number of seconds in (0, 3600]"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--time-limit", "nan", TIME),
        ("--time-limit", "inf", TIME),
        ("--time-limit", "-1", TIME),
        ("--time-limit", "0", TIME),
        ("--time-limit", "3601", TIME),
        ("--workers", "0", "--workers must be an integer in [1, 64], not 0"),
        ("--workers", "-3", "--workers must be an integer in [1, 64], not -3"),
        ("--workers", "100000", "--workers must be an integer in [1, 64], not 100000"),
        ("--seed", "-1", "--seed must be an integer in [0, 2147483647], not -1"),
        ("--seed", "99999999999", "--seed must be an integer in [0, 2147483647], not 99999999999"),
    ],
)
def test_solve_refuses_numbers_out_of_range(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SOLVE, option, value]) == 2
    assert message in capsys.readouterr().err


def test_solve_accepts_the_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*SOLVE, "--policy", str(EXAMPLE / "policy.yaml"), "-o", "json", "--no-timing"]
    assert main([*argv, "--time-limit", "3600", "--workers", "1", "--seed", str(2**31 - 1)]) == 0
    assert main([*argv, "--time-limit", "0.5", "--workers", "1", "--seed", "0"]) == 0
    capsys.readouterr()


def test_the_cli_ranges_are_the_policy_files() -> None:
    from gpupolicy.policy.policyfile.model import MAX_SEED, MAX_TIME_LIMIT_SECONDS, MAX_WORKERS

    assert (MAX_TIME_LIMIT_SECONDS, MAX_WORKERS, MAX_SEED) == (3600, 64, 2**31 - 1)


@pytest.fixture
def openb(tmp_path: Path) -> list[str]:
    nodes, pods = tmp_path / "nodes.csv", tmp_path / "openb_pod_list_tiny.csv"
    nodes.write_text(NODES_CSV)
    pods.write_text(PODS_CSV)
    return ["--nodes", str(nodes), "--pods", str(pods)]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "0-99999999"], "at most 1000 seeds, not 100000000"),
        (["--seeds", "1,0-99999999,5"], "at most 1000 seeds, not 100000002"),
        (["--seeds", "-5"], "bad --seeds '-5'"),
        (["--seeds", "4294967296"], "seeds are integers in [0, 4294967295]"),
        (["--seeds", "9" * 5000], "seeds are integers in [0, 4294967295]"),
        (["--target", "-1"], "--target must be a number in [0, 10], not -1"),
        (["--target", "nan"], "--target must be a number in [0, 10], not nan"),
        (["--target", "inf"], "--target must be a number in [0, 10], not inf"),
        (["--target", "1e9"], "--target must be a number in [0, 10], not 1e+09"),
        (["--ceiling", "nan"], "--ceiling takes an arrived percent between 0 and 1000"),
        (["--time-limit", "nan"], TIME),
    ],
)
def test_simulate_refuses_numbers_out_of_range(extra: list[str], message: str, openb: list[str]) -> None:
    out = gpupolicy("simulate", *openb, "--strategy", "first-fit", *extra, timeout=60)
    assert not out.traceback, out.stderr[-2000:]
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert message in out.stderr, out.stderr[-2000:]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--time-limit", "nan"], TIME),
        (["--time-limit", "inf"], TIME),
        (["--window", "-1"], "--window must be an integer in [1, "),
    ],
)
def test_simulate_claims_mode_refuses_numbers_out_of_range(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", *CLAIMS_MODE, "--strategy", "first-fit", *extra]) == 2
    assert message in capsys.readouterr().err


def test_seed_count_is_bounded_before_the_list_is_built() -> None:
    from gpupolicy.solver.simulate.run import MAX_SEEDS

    assert len(parse_seeds(f"0-{MAX_SEEDS - 1}")) == MAX_SEEDS == 1000
    with pytest.raises(ValueError, match="at most 1000 seeds, not 1001"):
        parse_seeds(f"0-{MAX_SEEDS}")
    with pytest.raises(ValueError, match="at most 1000 seeds, not 4294967296"):
        parse_seeds("0-4294967295")
    assert parse_seeds(" 7 , 42-43 ") == [7, 42, 43]
    assert parse_seeds("4294967295") == [4294967295]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--time-limit", "nan"], TIME),
        (["run", "--workers", "0"], "--workers must be an integer in [1, 64], not 0"),
        (["run", "--batch-window", "nan"], "--batch-window must be a number in [0, 86400], not nan"),
        (["run", "--poll-interval", "-1"], "--poll-interval must be a number in [0, 86400], not -1"),
        (["run", "--resync", "inf"], "--resync must be a number in (0, 86400], not inf"),
        (["run", "--lease-duration", "0.5"], "--lease-duration must be a number in [1, 86400], not 0.5"),
        (["run", "--lease-duration", "nan"], "--lease-duration must be a number in [1, 86400], not nan"),
        (["run", "--write-parallelism", "0"], "--write-parallelism must be an integer in [1, 256], not 0"),
        (["run", "--max-batch", "0"], "--max-batch must be an integer in [1, 1000000], not 0"),
        (["propose", "--time-limit", "inf"], TIME),
        (["propose", "--seed", "-1"], "--seed must be an integer in [0, 2147483647], not -1"),
    ],
)
def test_controller_refuses_numbers_out_of_range(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked before any kubeconfig is read or any API call is made (NaN used to pass ``<= 0`` checks)."""
    assert main(["controller", *argv, "--kubeconfig", str(tmp_path / "none")]) == 2
    assert message in capsys.readouterr().err
