"""What a test-bed node could leave behind on the host, as a comparable snapshot (docs/e2e.md, "Host hygiene").

The kubelet writes fixed host paths whatever its flags say (``/var/lib/kubelet``, ``/var/log/containers``,
``/var/log/pods``, ``/usr/libexec/kubernetes``) and, unless stopped, three sysctls; it also mounts. A snapshot
records those paths' entries, the sysctls, the mount table and the node processes the test run started that are
still alive."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

WATCHED_DIRS = ("/var/lib", "/var/lib/kubelet", "/var/log", "/usr/libexec", "/usr/libexec/kubernetes")
SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
PROGRAMS = ("kubelet", "cri-standin")


def _entries(folder: str) -> frozenset[str]:
    """The folders in ``folder`` (what the kubelet creates there; a log file some other program writes meanwhile
    is not the test run's doing)."""
    try:
        with os.scandir(folder) as found:
            return frozenset(e.name for e in found if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return frozenset({"<absent>"})


def _sysctl(name: str) -> str:
    return Path("/proc/sys", name).read_text().strip()


def _parent(pid: str) -> int:
    for line in Path("/proc", pid, "status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return 0


def testbed_processes(marker: str = "") -> frozenset[tuple[int, str]]:
    """(pid, command line) of the live kubelets, CRI stand-ins and plugins this process started (not those of
    another test run on the same machine), and of any child whose command line has ``marker``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if _parent(entry) != os.getpid():
                continue
            argv = Path("/proc", entry, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = b" ".join(argv).decode(errors="replace").strip()
        program = os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else ""
        if program in PROGRAMS or " plugin run " in line or (marker and marker in line):
            found.add((int(entry), line))
    return frozenset(found)


@dataclass(frozen=True)
class HostSnapshot:
    dirs: tuple[tuple[str, frozenset[str]], ...]
    sysctls: tuple[tuple[str, str], ...]
    mounts: frozenset[str]
    processes: frozenset[tuple[int, str]]

    def differences(self, later: HostSnapshot) -> list[str]:
        out = []
        for (folder, before), (_, after) in zip(self.dirs, later.dirs, strict=True):
            if before != after:
                out.append(f"{folder}: added {sorted(after - before)}, removed {sorted(before - after)}")
        for (name, before_value), (_, after_value) in zip(self.sysctls, later.sysctls, strict=True):
            if before_value != after_value:
                out.append(f"sysctl {name}: {before_value} -> {after_value}")
        if later.mounts - self.mounts:
            out.append(f"new mounts: {sorted(later.mounts - self.mounts)}")
        if later.processes - self.processes:
            out.append(f"processes left: {sorted(later.processes - self.processes)}")
        return out


def _mounts() -> frozenset[str]:
    # mount point + filesystem type + source; IDs and options may change for unrelated reasons
    lines = Path("/proc/self/mounts").read_text().splitlines()
    return frozenset(" ".join(line.split()[:3]) for line in lines)


def snapshot(marker: str = "") -> HostSnapshot:
    return HostSnapshot(
        dirs=tuple((d, _entries(d)) for d in WATCHED_DIRS),
        sysctls=tuple((s, _sysctl(s)) for s in SYSCTLS),
        mounts=_mounts(),
        processes=testbed_processes(marker),
    )
