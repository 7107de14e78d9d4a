"""Input files are read with a bound: at most the size limit plus one byte, and only regular files.

``/dev/zero`` never ends, a FIFO blocks its reader until a writer comes, and a huge file used to be
read whole before its size was checked. Every command that reads files goes through
``gpupolicy.plugin.cli.files.read_source``; each case runs the real command in a child process
with a memory cap and a time limit (:mod:`tests.bounded`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupolicy.plugin.cli.files import read_source
from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.policy.yamlsrc import MAX_FILE_BYTES
from tests.bounded import gpupolicy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mig-inference"
OK_CLUSTER, OK_CLAIMS, OK_POLICY = (str(EXAMPLE / n) for n in ("cluster.yaml", "claims.yaml", "policy.yaml"))


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    yield str(path)
    path.unlink()


@pytest.fixture
def huge(tmp_path: Path) -> Iterator[str]:
    """A sparse file of 700 MB: no disk used, but reading it whole costs 700 MB and more."""
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as handle:
        handle.truncate(700 * 1024 * 1024)
    yield str(path)
    path.unlink()


def _commands(bad: str, state: str) -> dict[str, list[str]]:
    return {
        "validate": ["validate", bad],
        "select": ["select", "--inventory", bad, "true"],
        "render": ["render", bad, OK_CLUSTER],
        "solve": ["solve", "--inventory", OK_CLUSTER, "--claims", bad, "--policy", OK_POLICY],
        "solve --previous": [
            "solve",
            *("--inventory", OK_CLUSTER, "--claims", OK_CLAIMS, "--policy", OK_POLICY, "--previous", bad),
        ],
        "simulate": ["simulate", "--inventory", bad, "--claims", OK_CLAIMS, "--strategy", "first-fit"],
        "simulate --nodes": ["simulate", "--nodes", bad, "--pods", bad, "--strategy", "first-fit"],
        "controller run": [
            "controller",
            *("run", "--policy", bad, "--once", "--no-leader-election", "--metrics-address", ""),
        ],
        "discover": ["discover", "-o", "yaml", "--policy", bad, "--nvml", "sim:1xH100-80GB", "--node-name", "n1"],
        "plugin run": [
            "plugin",
            "run",
            *("--policy", bad, "--nvml", "sim:1xH100-80GB", "--node-name", "n1", "--metrics-address", ""),
            *("--state-dir", state, "--plugin-dir", state, "--registry-dir", state, "--cdi-root", state),
        ],
    }


COMMANDS = list(_commands("X", "S"))


def _check(command: str, bad: str, tmp_path: Path, code: str, timeout: float = 60) -> None:
    argv = _commands(bad, str(tmp_path / "state"))[command]
    out = gpupolicy(*argv, timeout=timeout)
    assert not out.traceback, out.stderr[-3000:]
    assert out.returncode == 1, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    assert f"{bad}:0:0: {code}: " in out.stdout + out.stderr, (out.stdout[-2000:], out.stderr[-2000:])


@pytest.mark.parametrize("command", COMMANDS)
def test_dev_zero_is_refused_as_not_a_regular_file(command: str, tmp_path: Path) -> None:
    _check(command, "/dev/zero", tmp_path, "file_not_regular")


@pytest.mark.parametrize("command", ["validate", "solve", "controller run", "plugin run"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(command: str, fifo: str, tmp_path: Path) -> None:
    _check(command, fifo, tmp_path, "file_not_regular", timeout=20)


@pytest.mark.parametrize("command", ["validate", "render", "solve", "controller run", "plugin run"])
def test_a_huge_file_is_refused_after_reading_only_the_limit(command: str, huge: str, tmp_path: Path) -> None:
    _check(command, huge, tmp_path, "file_too_large")


def test_the_limit_is_inclusive(tmp_path: Path) -> None:
    path = tmp_path / "limit.yaml"
    path.write_bytes(b"a: 1\n" + b"#" * 95)
    assert read_source(path, limit=100)[0].startswith("a: 1")
    with pytest.raises(DiagnosticError) as info:
        read_source(path, limit=99)
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.location.file, diag.message) == (
        "file_too_large",
        str(path),
        f"cannot read {path}: the file is larger than 99 bytes",
    )


def test_the_default_limit_is_the_yaml_limit() -> None:
    assert read_source.__kwdefaults__ is not None
    assert read_source.__kwdefaults__["limit"] == MAX_FILE_BYTES


def test_a_directory_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as info:
        read_source(tmp_path, "nodes_unreadable")
    (diag,) = info.value.diagnostics
    assert diag.code == "nodes_unreadable"
    assert "directory" in diag.message


def test_a_byte_order_mark_is_still_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfsn,gpu\n")
    assert read_source(path) == ("sn,gpu\n", str(path))


def test_invalid_utf8_is_located_at_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"a: \xff\n")
    with pytest.raises(DiagnosticError) as info:
        read_source(path)
    assert info.value.diagnostics[0].code == "file_unreadable"


def test_a_simulated_node_from_a_cluster_file_is_read_with_the_same_bound(tmp_path: Path) -> None:
    """``--nvml sim:@FILE`` (discover, plugin run) reads its cluster description like every other input."""
    fifo = tmp_path / "cluster.fifo"
    os.mkfifo(fifo)
    argv = ["discover", "--nvml", f"sim:@{fifo}", "--node-name", "n"]
    result = gpupolicy(*argv)
    assert result.returncode == 1 and "file_not_regular" in result.stderr and "Traceback" not in result.stderr
    result = gpupolicy("discover", "--nvml", "sim:@/dev/zero", "--node-name", "n")
    assert result.returncode == 1 and "file_not_regular" in result.stderr and "Traceback" not in result.stderr
    result = gpupolicy("discover", "--nvml", f"sim:@{tmp_path / 'missing.yaml'}", "--node-name", "n")
    assert result.returncode == 1 and "file_unreadable" in result.stderr and "Traceback" not in result.stderr
