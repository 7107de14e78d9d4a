"""Reading the files a command is given: the text and its name, or a located diagnostic.

Every file a command reads (``--inventory``, ``--claims``, ``--policy``, ``--previous``, the openb
CSVs, the files ``validate`` is given, ``plugin run --policy``, ``controller run --policy``) comes
through :func:`read_source`, which reads at most the size limit plus one byte, and only from a
regular file: ``/dev/zero`` never ends and a FIFO blocks its reader until a writer comes.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from gpupolicy.policy.errors import DiagnosticError, Location

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
