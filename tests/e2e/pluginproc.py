"""Run ``gpupolicy plugin run`` (simulated NVML) as a real process against the test bed, as a DaemonSet pod would."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.controlplane import REPO, ControlPlane, die_with_parent

MIXED_POLICY = Path(__file__).resolve().parent / "data" / "mixed-h100-policy.yaml"
# GPUs 3-5 have MIG mode on (the mixed policy publishes them as dynamic MIG; MIG devices cannot be made otherwise).
SIM_8XH100 = "sim:3xH100-80GB,3xH100-80GB:mig,2xH100-80GB"


@dataclass
class PluginProcess:
    """One node's plugin. Folders live under a short /tmp path (unix socket paths are limited to 107 bytes)."""

    plane: ControlPlane
    node: str
    policy: Path
    nvml: str = SIM_8XH100
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gp-", dir="/tmp")))
    registry: Path | None = None  # a real kubelet's plugins_registry; default: a folder of our own
    resync_s: float = 1.0
    kubeconfig: Path | None = None  # whose credentials the plugin uses; default: the test bed's admin
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the next start (crash points)
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    resync_s: float = 1.0
    """``--resync``: short, so that a test waits little for a periodic check; an hour to see only the watches."""

    @property
    def plugin_dir(self) -> Path:
        return self.root / "plugins"

    @property
    def registry_dir(self) -> Path:
        return self.registry or self.root / "registry"

    @property
    def cdi_root(self) -> Path:
        return self.root / "cdi"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def log(self, chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return (self.root / f"plugin-{self.starts}.log").read_text(errors="replace")[-chars:]
        return ""

    def _cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "gpupolicy.plugin.cli.main", "plugin", *args]

    def start(self, policy: Path | None = None) -> None:
        assert self.popen is None or self.popen.poll() is not None, "already running"
        if policy is not None:
            self.policy = policy
        self.starts += 1
        argv = self._cli(
            "run",
            f"--kubeconfig={self.kubeconfig or self.plane.kubeconfig}",
            f"--node-name={self.node}",
            f"--policy={self.policy}",
            f"--plugin-dir={self.plugin_dir}",
            f"--registry-dir={self.registry_dir}",
            f"--cdi-root={self.cdi_root}",
            f"--state-dir={self.state_dir}",
            f"--nvml={self.nvml}",
            f"--resync={self.resync_s:g}",
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with (self.root / f"plugin-{self.starts}.log").open("wb") as out:
            self.popen = subprocess.Popen(
                argv,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the plugin (SIGTERM: graceful; SIGKILL: a crash) and return its exit status."""
        if self.popen is None:
            return 0
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
        try:
            return self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            return self.popen.wait(timeout=20)

    def withdraw(self, driver: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._cli(
                "withdraw",
                f"--kubeconfig={self.plane.kubeconfig}",
                f"--node-name={self.node}",
                f"--driver-name={driver}",
            ),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def dra_socket(self, driver: str) -> Path:
        return self.plugin_dir / driver / "dra.sock"

    def close(self) -> None:
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
