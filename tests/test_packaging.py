"""The import packages are this project's files, installed under one name, and the layers stay in their rooms."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("policy", "solver", "plugin")


@pytest.mark.parametrize("folder", FOLDERS)
def test_packages_resolve_to_this_project(folder: str) -> None:
    module = __import__(f"gpupolicy.{folder}", fromlist=["__file__"])
    assert Path(module.__file__ or "").resolve().parent == ROOT / folder


def test_every_package_folder_is_listed_for_setuptools() -> None:
    """An explicit package list (needed for the folder -> gpupolicy.* mapping) misses a new subpackage silently."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        "gpupolicy." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert listed == found


def _modules_loaded_by(args: list[str]) -> set[str]:
    """Run the CLI in a fresh interpreter and return the top-level modules it imported."""
    code = (
        "import json, sys\n"
        "from gpupolicy.plugin.cli.main import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "examples"],
        ["select", "--inventory", "examples/mig-inference/cluster.yaml", 'device.driver != ""'],
    ],
)
def test_validate_and_select_do_not_load_grpc_or_nvml(args: list[str]) -> None:
    loaded = _modules_loaded_by(args)
    assert not loaded & {"grpc", "pynvml", "kubernetes", "ortools"}, sorted(loaded)


def test_console_script_is_declared() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"gpupolicy": "gpupolicy.plugin.cli.main:main"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip wheel .`` builds, from a copy of the sources (the build writes into its source folder)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("gpupolicy-*.whl")
    return built


def test_wheel_has_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "gpupolicy = gpupolicy.plugin.cli.main:main" in archive.read(entry_points).decode()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"gpupolicy"}
    for data in ("gpupolicy/policy/data/mig_profiles.csv", "gpupolicy/plugin/kubelet/proto/dra_v1.proto"):
        assert data in names
    for folder in FOLDERS:
        assert f"gpupolicy/{folder}/py.typed" in names


def test_installed_wheel_has_no_bare_names(wheel: Path, tmp_path: Path) -> None:
    """From the unpacked wheel alone (plus the dependencies), outside the repository: the CLI works and
    ``import policy`` fails."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    deps = [p for p in sys.path if p.endswith("site-packages")]
    # -I -S: no user site, no .pth files (the editable install of this checkout is one), no current folder
    prelude = f"import sys; sys.path[:0] = {json.dumps([str(site), *deps])};"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-I", "-S", "-c", prelude + code],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    helped = run("from gpupolicy.plugin.cli.main import main; main(['--help'])")
    assert helped.returncode == 0, helped.stderr
    assert "usage: gpupolicy" in helped.stdout
    origin = run("import gpupolicy.policy as p; print(p.__file__)")
    assert origin.stdout.strip().startswith(str(site)), origin
    for bare in FOLDERS:
        result = run(f"import {bare}")
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, (bare, result)
