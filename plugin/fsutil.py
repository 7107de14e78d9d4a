"""The plugin's file helpers: atomic writes (the checkpoint, CDI specs, remembered GPU modes, simulated state), and
bounded reads of the files a user names (:func:`read_source`).

A write goes to a temporary file next to the target (same folder, so the rename cannot cross file
systems), all of it (``os.write`` may write fewer bytes than asked), is fsynced when it must be
durable, and is renamed over the target; readers and crashes see the old content or the new, never
a mix. A write that fails removes its temporary file and leaves the target as it was.

``begin_atomic`` / ``finish_atomic`` split ``write_atomic`` in two for an event loop: the first only
fills the page cache, the second waits for the disk (run it on a thread).

A process killed in the middle of a write leaves its temporary file behind (``.<name>.tmp-<pid>-<thread>``);
``sweep_stale_tmp`` removes those of processes and threads that no longer write (the plugin runs it at start).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from gpupolicy.policy.errors import DiagnosticError, Location

StrPath = str | os.PathLike[str]


class PendingWrite(NamedTuple):
    """A temporary file written and still open, to be made durable and put in place."""

    fd: int
    tmp: str
    path: str


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``: ``os.write`` may write fewer bytes than asked (a signal, a full
    disk), so write the rest until done; a write that makes no progress raises ``OSError``."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        written = os.write(fd, view[done:])
        if written <= 0:
            raise OSError(errno.EIO, f"short write: {done} of {len(view)} bytes written, then none")
        done += written


def tmp_path(path: StrPath) -> str:
    """A temporary name next to ``path``, of this process and thread (concurrent writers never share one)."""
    head, tail = os.path.split(os.fspath(path))
    return os.path.join(head, f".{tail}.tmp-{os.getpid()}-{threading.get_ident()}")


_TMP = re.compile(r"\.(?P<target>.+)\.tmp-(?P<pid>[0-9]+)-(?P<thread>[0-9]+)")


def sweep_stale_tmp(folder: StrPath, wanted: Callable[[str], bool] = lambda target: True) -> list[str]:
    """Remove the temporary files in ``folder`` that ``tmp_path`` named for a target ``wanted`` accepts and
    whose writer is gone: a process that no longer runs, or this process's thread that no longer runs (a
    restarted container often gets the same PID). Returns the names removed; one that cannot be removed, or a
    folder that cannot be read, is skipped."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    mine = {t.ident for t in threading.enumerate()}
    removed = []
    for name in sorted(names):
        m = _TMP.fullmatch(name)
        if m is None or not wanted(m["target"]):
            continue
        pid, thread = int(m["pid"]), int(m["thread"])
        live = thread in mine if pid == os.getpid() else _running(pid)
        if live:
            continue
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, name))
            removed.append(name)
    return removed


def _running(pid: int) -> bool:
    if pid <= 0:  # 0 would ask about our own process group
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:  # another user's process
        return True
    except (ProcessLookupError, OverflowError):
        return False
    return True


def fsync_dir(path: StrPath) -> None:
    """Make the entries of folder ``path`` durable (a rename into it survives a power loss)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def begin_atomic(path: StrPath, data: bytes, mode: int = 0o600) -> PendingWrite:
    """Write ``data`` to a new temporary file next to ``path`` (into the page cache, not yet durable).
    A missing folder raises ``FileNotFoundError``; any failure removes the temporary file."""
    target = os.fspath(path)
    tmp = tmp_path(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        write_all(fd, data)
    except BaseException:
        _discard(fd, tmp)
        raise
    return PendingWrite(fd, tmp, target)


def finish_atomic(pending: PendingWrite, *, durable: bool = True, sync_dir: bool | None = None) -> None:
    """Put a ``begin_atomic`` write in place: fsync it (``durable``), rename it over its target, then
    fsync the folder (``sync_dir``, by default as ``durable``). Only a write that fails before the rename
    leaves the target untouched; the folder's fsync can fail after it, and then raises too."""
    fd, tmp, target = pending
    try:
        if durable:
            os.fsync(fd)
    except BaseException:
        _discard(fd, tmp)
        raise
    try:
        os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable if sync_dir is None else sync_dir:
        fsync_dir(os.path.dirname(target) or ".")


def write_atomic(
    path: StrPath, data: bytes, mode: int = 0o600, *, durable: bool = True, sync_dir: bool | None = None
) -> None:
    """Replace ``path`` by ``data`` atomically; ``durable``: the new content and the rename survive a power
    loss (file and folder fsynced; ``sync_dir=False`` leaves out the folder's)."""
    finish_atomic(begin_atomic(path, data, mode), durable=durable, sync_dir=sync_dir)


def _discard(fd: int, tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


# -- bounded reads of the files a user names (every CLI input, plugin run --policy, --nvml sim:@FILE)

# gpupolicy.policy.yamlsrc.MAX_FILE_BYTES (a test checks it), not imported: every command loads this module,
# and the YAML reader would load PyYAML with it.
MAX_FILE_BYTES = 64 * 1024 * 1024
_CHUNK = 1 << 20
_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def read_source(path: str | Path, code: str = "file_unreadable", *, limit: int = MAX_FILE_BYTES) -> tuple[str, str]:
    """``(text, name)`` of a UTF-8 file, without a leading byte-order mark (spreadsheets write one), line
    ends made ``\n`` (as text mode reads them).

    A missing, unreadable or non-UTF-8 file (or a directory) is ``code`` at ``path``; a device, FIFO or
    socket is ``file_not_regular``, and a file of more than ``limit`` bytes ``file_too_large``, found
    without reading more than ``limit + 1`` bytes."""
    name = str(path)
    try:
        text = _read_limited(name, limit).decode("utf-8-sig")
        return text.replace("\r\n", "\n").replace("\r", "\n"), name
    except _NotRegular as exc:
        raise DiagnosticError.single("file_not_regular", f"cannot read {name}: {exc}", Location(name)) from None
    except _TooLarge:
        message = f"cannot read {name}: the file is larger than {limit} bytes"
        raise DiagnosticError.single("file_too_large", message, Location(name)) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DiagnosticError.single(code, f"cannot read {name}: {reason}", Location(name)) from None


class _NotRegular(Exception):
    pass


class _TooLarge(Exception):
    pass


def _read_limited(name: str, limit: int) -> bytes:
    # O_NONBLOCK: opening a FIFO must not wait for a writer; the file is refused before any read.
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory")
        if not stat.S_ISREG(mode):
            raise _NotRegular(f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'a special file')})")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise _TooLarge
    return b"".join(chunks)
