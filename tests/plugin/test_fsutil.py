"""Atomic writes: all bytes or an error (short writes), the old file kept on failure, no temporary files left."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from gpupolicy.plugin import fsutil

DATA = bytes(range(256)) * 64  # 16 KiB


def short_writes(monkeypatch: pytest.MonkeyPatch, chunk: int, *, stall_after: int | None = None) -> list[int]:
    """``os.write`` writes at most ``chunk`` bytes a call, and none once ``stall_after`` bytes are written."""
    real_write = os.write
    sizes: list[int] = []

    def write(fd: int, data: bytes) -> int:
        total = sum(sizes)
        limit = chunk if stall_after is None else min(chunk, stall_after - total)
        written = real_write(fd, bytes(data[: max(limit, 0)])) if limit > 0 else 0
        sizes.append(written)
        return written

    monkeypatch.setattr(os, "write", write)
    return sizes


def test_write_replaces_the_file_with_its_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    target.write_bytes(b"old")
    fsutil.write_atomic(target, DATA)
    assert target.read_bytes() == DATA
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    fsutil.write_atomic(str(target), b"x", 0o644, durable=False)
    assert target.read_bytes() == b"x" and stat.S_IMODE(target.stat().st_mode) & 0o044 == 0o044
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_short_writes_are_continued_until_every_byte_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = short_writes(monkeypatch, 1000)
    fsutil.write_atomic(tmp_path / "f", DATA)
    assert (tmp_path / "f").read_bytes() == DATA
    assert len(sizes) == 17 and sum(sizes) == len(DATA)


def test_a_write_that_stops_making_progress_raises_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    short_writes(monkeypatch, 1000, stall_after=5000)
    with pytest.raises(OSError, match="short write: 5000 of 16384 bytes"):
        fsutil.write_atomic(target, DATA)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


@pytest.mark.parametrize("fail", ["write", "fsync", "replace"])
def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str
) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, fail, disk_full)
    with pytest.raises(OSError, match="No space left"):
        fsutil.write_atomic(target, DATA)
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_a_missing_folder_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fsutil.write_atomic(tmp_path / "no" / "f", b"x")


@pytest.mark.parametrize(
    ("durable", "sync_dir", "synced"),
    [(True, None, ["file", "folder"]), (True, False, ["file"]), (False, None, []), (False, True, ["folder"])],
)
def test_durable_writes_fsync_the_file_and_then_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool, sync_dir: bool | None, synced: list[str]
) -> None:
    real_fsync = os.fsync
    seen: list[str] = []

    def fsync(fd: int) -> None:
        seen.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    fsutil.write_atomic(tmp_path / "f", b"x", durable=durable, sync_dir=sync_dir)
    assert seen == synced


def test_begin_and_finish_split_the_write(tmp_path: Path) -> None:
    target = tmp_path / "f"
    pending = fsutil.begin_atomic(target, DATA)
    assert not target.exists() and Path(pending.tmp).read_bytes() == DATA and pending.path == str(target)
    fsutil.finish_atomic(pending)
    assert target.read_bytes() == DATA and [p.name for p in tmp_path.iterdir()] == ["f"]
