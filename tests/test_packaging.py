"""The import packages are this project's files, and the layers stay in their rooms."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", ["policy", "solver", "plugin"])
def test_packages_resolve_to_this_project(package: str) -> None:
    module = __import__(package)
    assert Path(module.__file__ or "").resolve().parent == ROOT / package


def _modules_loaded_by(args: list[str]) -> set[str]:
    """Run the CLI in a fresh interpreter and return the top-level modules it imported."""
    code = (
        "import json, sys\n"
        "from plugin.cli.main import main\n"
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
    text = (ROOT / "pyproject.toml").read_text()
    assert 'gpupolicy = "plugin.cli.main:main"' in text
