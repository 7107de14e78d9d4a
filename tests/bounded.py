"""Run hostile input in a child process with a memory cap and a time limit.

A regression in a size or depth limit then fails the test fast (a MemoryError, a kill, a timeout)
instead of eating the machine or taking pytest down with a segfault. The child writes no core file.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

MEMORY_CAP = 768 * 1024 * 1024  # address space: the interpreter, ortools' import and a 64 MiB file fit
TIME_LIMIT = 60.0


@dataclass(frozen=True)
class Outcome:
    returncode: int  # negative: killed by that signal
    stdout: str
    stderr: str

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr


def _limits(memory: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_bounded(
    argv: Sequence[str], *, memory: int = MEMORY_CAP, timeout: float = TIME_LIMIT, cwd: str | None = None
) -> Outcome:
    """``argv`` run with ``memory`` bytes of address space at most; a timeout fails the calling test."""
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        preexec_fn=lambda: _limits(memory),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def python(code: str, *args: str, memory: int = MEMORY_CAP, timeout: float = TIME_LIMIT) -> Outcome:
    """``python -P -c code args...`` under the limits."""
    return run_bounded([sys.executable, "-P", "-c", code, *args], memory=memory, timeout=timeout)


def gpupolicy(*args: str, memory: int = MEMORY_CAP, timeout: float = TIME_LIMIT, cwd: str | None = None) -> Outcome:
    """The ``gpupolicy`` command under the limits."""
    argv = [sys.executable, "-P", "-m", "gpupolicy.plugin.cli.main", *args]
    return run_bounded(argv, memory=memory, timeout=timeout, cwd=cwd)
