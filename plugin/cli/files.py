"""Reading the files a command is given: the text and its name, or a located diagnostic."""

from __future__ import annotations

from pathlib import Path

from gpupolicy.policy.errors import DiagnosticError, Location


def read_source(path: str | Path, code: str = "file_unreadable") -> tuple[str, str]:
    """``(text, name)`` of a UTF-8 file, without a leading byte-order mark (spreadsheets write one).

    A missing, unreadable or non-UTF-8 file is ``code`` at ``path``."""
    name = str(path)
    try:
        return Path(path).read_text(encoding="utf-8-sig"), name
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DiagnosticError.single(code, f"cannot read {name}: {reason}", Location(name)) from None
