"""``gpupolicy --version``: the package version and the git revision it was built from.

The revision comes from, in order: the file ``REVISION`` next to this module, which ``scripts/build-image``
writes into the wheel it builds (so an image reports the commit it was built from); else ``git`` run in the
source checkout this module lives in (a development install); else ``unknown``. A working tree with
uncommitted changes to tracked files reports ``<sha>-dirty``.
"""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

REVISION_FILE = Path(__file__).with_name("REVISION")
UNKNOWN = "unknown"


def package_version() -> str:
    try:
        return metadata.version("gpupolicy")
    except metadata.PackageNotFoundError:
        return UNKNOWN


def _git(checkout: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_revision(checkout: Path) -> str | None:
    """The commit checked out at ``checkout``, ``-dirty`` when tracked files differ from it; None without git."""
    sha = _git(checkout, "rev-parse", "--verify", "HEAD")
    if not sha:
        return None
    status = _git(checkout, "status", "--porcelain", "--untracked-files=no")
    return f"{sha}-dirty" if status else sha


def revision(revision_file: Path = REVISION_FILE, module_file: Path = Path(__file__)) -> str:
    try:
        recorded = revision_file.read_text(encoding="utf-8").strip()
    except OSError:
        recorded = ""
    if recorded:
        return recorded
    # A strict editable install links this file from build/: resolve the link to find the checkout.
    return git_revision(module_file.resolve().parent) or UNKNOWN


def version_line() -> str:
    return f"gpupolicy {package_version()} (revision {revision()})"
