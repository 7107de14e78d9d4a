"""``gpupolicy --version``: the package version and the git revision it was built from."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from gpupolicy.plugin.cli import version
from gpupolicy.plugin.cli.main import main

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "plugin" / "cli").mkdir(parents=True)
    (repo / "plugin" / "cli" / "version.py").write_text("# stand-in\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    return repo


def test_the_version_line_names_the_package_version_and_a_revision(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"gpupolicy {metadata.version('gpupolicy')} (revision ")
    revision = out.removeprefix(f"gpupolicy {metadata.version('gpupolicy')} (revision ").removesuffix(")\n")
    assert revision == "unknown" or len(revision.removesuffix("-dirty")) == 40


def test_a_revision_recorded_at_build_time_wins(tmp_path: Path, checkout: Path) -> None:
    recorded = tmp_path / "REVISION"
    recorded.write_text("0123456789abcdef0123456789abcdef01234567\n")
    module = checkout / "plugin" / "cli" / "version.py"
    assert version.revision(recorded, module) == "0123456789abcdef0123456789abcdef01234567"


@needs_git
def test_a_source_checkout_reports_its_commit_and_uncommitted_changes(tmp_path: Path, checkout: Path) -> None:
    module = checkout / "plugin" / "cli" / "version.py"
    head = _git(checkout, "rev-parse", "HEAD")
    assert version.revision(tmp_path / "absent", module) == head
    module.write_text("# changed\n")
    assert version.revision(tmp_path / "absent", module) == f"{head}-dirty"


@needs_git
def test_a_strict_editable_link_is_followed_to_the_checkout(tmp_path: Path, checkout: Path) -> None:
    link = tmp_path / "build" / "version.py"
    link.parent.mkdir()
    link.symlink_to(checkout / "plugin" / "cli" / "version.py")
    assert version.revision(tmp_path / "absent", link) == _git(checkout, "rev-parse", "HEAD")


def test_outside_any_checkout_and_with_no_record_the_revision_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "site-packages" / "version.py"
    module.parent.mkdir()
    module.write_text("")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert version.revision(tmp_path / "absent", module) == "unknown"
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no git at all
    assert version.revision(tmp_path / "absent", module) == "unknown"


def test_an_empty_record_falls_back_to_git_or_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = tmp_path / "REVISION"
    recorded.write_text("\n")
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert version.revision(recorded, tmp_path / "version.py") == "unknown"
