"""The plugin as a child process (``gpupolicy plugin run``) with its folders under one temp dir."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.plugin.kubelet.helpers import DRIVER, NODE
from tests.plugin.kubelet.kubelet import FakeKubelet

REPO = Path(__file__).resolve().parents[3]


@dataclass
class PluginProcess:
    root: Path
    kubeconfig: Path
    nvml: str = "sim:2xA100-40GB:mig,2xH100-80GB"
    extra: list[str] = field(default_factory=list)
    cdi: Path | None = None
    sockets: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gp-", dir="/tmp")))
    """Socket folders live under a short path: unix socket paths are limited to 107 characters."""
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def plugin_dir(self) -> Path:
        return self.sockets / "plugins"

    @property
    def registry_dir(self) -> Path:
        return self.sockets / "plugins_registry"

    @property
    def cdi_root(self) -> Path:
        return self.cdi or self.root / "cdi"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def dra_socket(self) -> Path:
        return self.plugin_dir / DRIVER / "dra.sock"

    @property
    def reg_socket(self) -> Path:
        return self.registry_dir / f"{DRIVER}-reg.sock"

    def start(self, env: dict[str, str] | None = None) -> PluginProcess:
        argv = [
            sys.executable, "-m", "gpupolicy.plugin.cli.main", "plugin", "run",
            "--node-name", NODE, "--driver-name", DRIVER,
            "--plugin-dir", str(self.plugin_dir), "--registry-dir", str(self.registry_dir),
            "--cdi-root", str(self.cdi_root), "--state-dir", str(self.state_dir),
            "--kubeconfig", str(self.kubeconfig), "--nvml", self.nvml, "--resync", "0.3", *self.extra,
        ]  # fmt: skip
        self.log = self.root / f"plugin-{len(list(self.root.glob('plugin-*.log')))}.log"
        full_env = {**os.environ, "GPUPOLICY_BOOT_ID": "boot-1", "PYTHONPATH": str(REPO), **(env or {})}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, env=full_env, stdout=subprocess.DEVNULL, stderr=log)
        return self

    def kubelet(self) -> FakeKubelet:
        return FakeKubelet(self.registry_dir, DRIVER)

    def wait(self, timeout_s: float = 20) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        """Stop the process for good and remove the socket folders."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.sockets, ignore_errors=True)

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.root.glob("plugin-*.log")))

    # what the simulated node has now
    def sim_state(self) -> dict[str, Any]:
        return dict(json.loads((self.state_dir / "sim-nvml.json").read_text()))

    def mig_instances(self) -> list[tuple[int, str, int]]:
        return sorted(
            (i, inst["profile"], inst["start"])
            for i, g in enumerate(self.sim_state()["gpus"])
            for inst in g["instances"]
        )

    def commands_state(self) -> dict[str, Any]:
        path = self.state_dir / "sim-commands.json"
        return dict(json.loads(path.read_text())) if path.exists() else {"timeslice": {}, "mps": {}}

    def cdi_files(self) -> list[str]:
        return sorted(p.name for p in self.cdi_root.iterdir()) if self.cdi_root.is_dir() else []

    def checkpoint_claims(self) -> dict[str, Any]:
        path = self.state_dir / "checkpoint.json"
        return dict(json.loads(path.read_text())["claims"]) if path.exists() else {}
