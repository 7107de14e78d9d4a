"""GPU sharing set up at prepare: time-slicing via ``nvidia-smi compute-policy``, MPS via a control
daemon per claim. Commands go through a ``CommandRunner`` so tests use ``FakeRunner``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from gpupolicy.plugin.fsutil import write_atomic
from gpupolicy.plugin.kubelet.checkpoint import SharingOp
from gpupolicy.plugin.kubelet.paths import check_inside

TIMESLICE = {"Default": 0, "Short": 1, "Medium": 2, "Long": 3}
NVIDIA_SMI = "nvidia-smi"
MPS_CONTROL = "nvidia-cuda-mps-control"
log = logging.getLogger(__name__)


class CommandError(Exception):
    pass


class CommandRunner(Protocol):
    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, stdin: str | None = None) -> str: ...


class SubprocessRunner:
    """Runs the real tools; a non-zero exit becomes ``CommandError`` with the tool's output."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, stdin: str | None = None) -> str:
        full_env = {**os.environ, **(env or {})}
        try:
            done = subprocess.run(
                list(argv),
                env=full_env,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CommandError(f"{argv[0]}: {exc}") from exc
        if done.returncode != 0:
            raise CommandError(f"{' '.join(argv)} exited {done.returncode}: {(done.stderr or done.stdout).strip()}")
        return done.stdout


class FakeRunner:
    """Understands the commands this module issues and keeps their effect (time-slice per GPU,
    running MPS daemons with their limits), optionally in a JSON file that survives restarts."""

    def __init__(self, state_file: Path | None = None) -> None:
        self._file = state_file
        self._lock = threading.Lock()
        self.calls: list[list[str]] = []
        self.state: dict[str, Any] = {"timeslice": {}, "mps": {}}
        if state_file is not None and state_file.exists():
            self.state = json.loads(state_file.read_text(encoding="utf-8"))

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, stdin: str | None = None) -> str:
        with self._lock:
            self.calls.append(list(argv))
            env = env or {}
            if argv[0] == NVIDIA_SMI and argv[1] == "compute-policy":
                self.state["timeslice"][argv[3]] = int(argv[4].split("=")[1])
                if self.state["timeslice"][argv[3]] == 0:
                    del self.state["timeslice"][argv[3]]
            elif argv[0] == MPS_CONTROL:
                self._mps(argv, env, stdin)
            else:
                raise CommandError(f"{argv[0]}: command not found")
            self._save()
            return ""

    def _mps(self, argv: Sequence[str], env: Mapping[str, str], stdin: str | None) -> None:
        pipe = env.get("CUDA_MPS_PIPE_DIRECTORY", "")
        daemons = self.state["mps"]
        if "-d" in argv:
            if pipe in daemons:
                raise CommandError(f"an MPS control daemon already runs on {pipe}")
            daemons[pipe] = {"devices": env.get("CUDA_VISIBLE_DEVICES", ""), "limits": []}
            return
        if pipe not in daemons:
            raise CommandError(f"cannot connect to the MPS control daemon on {pipe}")
        command = (stdin or "").strip()
        if command == "quit":
            del daemons[pipe]
        else:
            daemons[pipe]["limits"].append(command)

    def _save(self) -> None:
        if self._file is not None:
            # the file fsynced as before, the folder not: the real tools' state is no more durable
            write_atomic(self._file, json.dumps(self.state, sort_keys=True).encode(), sync_dir=False)


def set_timeslice(runner: CommandRunner, gpu_uuid: str, interval: str) -> None:
    runner.run([NVIDIA_SMI, "compute-policy", "-i", gpu_uuid, f"--set-timeslice={TIMESLICE[interval]}"])


def reset_timeslice(runner: CommandRunner, gpu_uuid: str) -> None:
    set_timeslice(runner, gpu_uuid, "Default")


def _mps_env(op: SharingOp) -> dict[str, str]:
    return {
        "CUDA_MPS_PIPE_DIRECTORY": str(Path(op.mps_dir) / "pipe"),
        "CUDA_MPS_LOG_DIRECTORY": str(Path(op.mps_dir) / "log"),
        "CUDA_VISIBLE_DEVICES": ",".join(op.gpu_uuids),
    }


def start_mps(runner: CommandRunner, op: SharingOp) -> None:
    """Start the claim's control daemon and apply its limits; stops it again when a limit fails."""
    for sub in ("pipe", "log"):
        (Path(op.mps_dir) / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    env = _mps_env(op)
    runner.run([MPS_CONTROL, "-d"], env=env)
    try:
        if op.active_thread_percentage is not None:
            runner.run(
                [MPS_CONTROL], env=env, stdin=f"set_default_active_thread_percentage {op.active_thread_percentage}"
            )
        if op.pinned_memory_limit:
            for index in range(len(op.gpu_uuids)):
                runner.run(
                    [MPS_CONTROL],
                    env=env,
                    stdin=f"set_default_device_pinned_mem_limit {index} {op.pinned_memory_limit}",
                )
    except CommandError:
        stop_mps(runner, op)
        raise


def start_shared_mps(runner: CommandRunner, op: SharingOp) -> None:
    """Start a shared GPU's control daemon unless it runs already (another claim started it).
    Its clients' limits come from their environment (``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE``...)."""
    for sub in ("pipe", "log"):
        (Path(op.mps_dir) / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        runner.run([MPS_CONTROL, "-d"], env=_mps_env(op))
    except CommandError as exc:
        if "already" not in str(exc).lower():
            raise


def stop_mps(runner: CommandRunner, op: SharingOp, root: Path | None = None) -> None:
    """Stop the daemon and remove its folders. A daemon that does not answer is taken to be gone
    (it died, or a crash interrupted its start): unprepare must not stay stuck on it.

    With ``root`` (the MPS folders' folder), a daemon folder that is not directly inside it is not removed
    (:class:`~gpupolicy.plugin.kubelet.paths.UnsafePath`, raised after the daemon was asked to quit)."""
    try:
        runner.run([MPS_CONTROL], env=_mps_env(op), stdin="quit")
    except CommandError as exc:
        log.warning("MPS control daemon in %s did not take 'quit' (%s); treating it as stopped", op.mps_dir, exc)
    if root is not None:
        check_inside(root, op.mps_dir)
    shutil.rmtree(op.mps_dir, ignore_errors=True)
