"""Paths built from names that come from outside (claim UIDs): each builder refuses a name that would leave its root.

Claim references are checked when kubelet's call arrives (:mod:`gpupolicy.plugin.kubelet.refs`); these checks are the
second line: whatever reaches a path builder (a record from an old checkpoint, a caller that skipped the first check)
can only name an entry directly inside the root it was meant for.
"""

from __future__ import annotations

import os

NAME_MAX = 255
"""Bytes in one file name (Linux ``NAME_MAX``)."""


class UnsafePath(ValueError):
    """A name or path that would leave the folder it belongs in (``/``, ``..``, NUL, too long)."""


def check_name(name: str) -> str:
    """``name`` when it is one plain entry of a folder; raises :class:`UnsafePath` otherwise."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\0" in name
        or len(name.encode("utf-8", "surrogateescape")) > NAME_MAX
    ):
        raise UnsafePath(f"{name[:80]!r} is not a plain file name")
    return name


def child(root: str | os.PathLike[str], name: str) -> str:
    """``<root>/<name>``, the entry ``name`` directly inside ``root``."""
    return os.path.join(os.fspath(root), check_name(name))


def check_inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """``path`` when it names an entry directly inside ``root`` (no ``..``, no links followed: the text alone decides);
    raises :class:`UnsafePath` otherwise."""
    text = os.fspath(path)
    head, tail = os.path.split(text)
    if "\0" in text or os.path.normpath(head) != os.path.normpath(os.fspath(root)):
        raise UnsafePath(f"{text[:200]!r} is not inside {os.fspath(root)!r}")
    check_name(tail)
    return text
