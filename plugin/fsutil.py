"""Atomic file writes for the plugin: the checkpoint, CDI specs, remembered GPU modes, simulated state.

A write goes to a temporary file next to the target (same folder, so the rename cannot cross file
systems), all of it (``os.write`` may write fewer bytes than asked), is fsynced when it must be
durable, and is renamed over the target; readers and crashes see the old content or the new, never
a mix. A write that fails removes its temporary file and leaves the target as it was.

``begin_atomic`` / ``finish_atomic`` split ``write_atomic`` in two for an event loop: the first only
fills the page cache, the second waits for the disk (run it on a thread).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from typing import NamedTuple

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
