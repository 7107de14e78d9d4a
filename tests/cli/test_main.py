"""`gpupolicy` itself: a subcommand whose module cannot be loaded is an error, never a missing command."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gpupolicy.plugin.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = cli.main(argv)
    return rc, capsys.readouterr().err


def test_a_missing_subcommand_module_fails_every_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.SUBCOMMANDS, "ghost", ("gpupolicy.plugin.cli.ghost", "a module that does not exist"))
    rc, err = _run(["validate", str(ROOT / "examples")], capsys)
    assert rc == 3  # EXIT_BROKEN
    assert err == (
        "gpupolicy: error: subcommand_unavailable: cannot load 'ghost' from gpupolicy.plugin.cli.ghost:"
        " ModuleNotFoundError: No module named 'gpupolicy.plugin.cli.ghost'\n"
    )


@pytest.mark.parametrize(
    ("source", "cause"),
    [
        ("import no_such_dependency_xyz\n", "ModuleNotFoundError: No module named 'no_such_dependency_xyz'"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("def run(args):\n    return 0\n", "the module has no add_arguments"),
    ],
    ids=["missing-dependency", "raises", "no-add-arguments"],
)
def test_a_broken_subcommand_module_names_the_module_and_the_cause(
    source: str,
    cause: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "broken_subcommand_xyz.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.SUBCOMMANDS, "broken", ("broken_subcommand_xyz", "a module that fails"))
    try:
        rc, err = _run(["--help"], capsys)
    finally:
        sys.modules.pop("broken_subcommand_xyz", None)
    assert rc == 3
    prefix = "gpupolicy: error: subcommand_unavailable: cannot load 'broken' from broken_subcommand_xyz"
    assert err == f"{prefix}: {cause}\n"


def test_every_shipped_subcommand_loads(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.SUBCOMMANDS)
