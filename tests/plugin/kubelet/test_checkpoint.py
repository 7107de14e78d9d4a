"""Checkpoint: round trip, checksums, versions (upgrade from version 1, refusal of newer ones),
corruption handling, boot ID, short writes."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from gpupolicy.plugin.kubelet.checkpoint import Checkpoint, ClaimRecord, ClaimState, MigOp, PreparedDevice, SharingOp
from gpupolicy.policy.k8s.ids import ClaimUID

RECORD = ClaimRecord(
    uid=ClaimUID("u1"),
    namespace="ns",
    name="c",
    state=ClaimState.PREPARE_COMPLETED,
    devices=(PreparedDevice(("gpu",), "node", "gpu-0", ("k8s.d/claim=u1-gpu-0",), "share-1"),),
    mig=(MigOp("GPU-1", "1g.5gb", 3, True, "MIG-1", 4, 0),),
    sharing=(SharingOp("MPS", ("MIG-1",), mps_dir="/state/mps/u1", active_thread_percentage=20),),
    cdi_file="/cdi/f.json",
    exclusive=("slot:GPU-1:3",),
)


def test_round_trip_and_file_shape(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path, "boot-a")
    cp.save({RECORD.uid: RECORD})
    assert cp.load().records == {RECORD.uid: RECORD}
    doc = json.loads(cp.path.read_text())
    assert doc["version"] == 2 and doc["bootId"] == "boot-a" and doc["checksum"].startswith("sha256:")
    assert doc["claims"]["u1"]["state"] == "PrepareCompleted"
    assert cp.path.stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]  # no temp files left


def test_missing_file_is_empty(tmp_path: Path) -> None:
    result = Checkpoint(tmp_path, "b").load()
    assert result.records == {} and result.corrupted is None


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda text: text[: len(text) // 2],
        lambda text: text.replace("PrepareCompleted", "PrepareStarted"),
        lambda text: text.replace('"version":2', '"version":0'),  # a newer version is not corrupt (below)
        lambda text: text.replace('"version":2', '"version":"2"'),
        lambda text: "[]",
        lambda text: "\x00\xff garbage",
    ],
)
def test_corrupted_checkpoint_moved_aside(tmp_path: Path, corrupt) -> None:  # type: ignore[no-untyped-def]
    cp = Checkpoint(tmp_path, "boot-a")
    cp.save({RECORD.uid: RECORD})
    cp.path.write_text(corrupt(cp.path.read_text()))
    result = cp.load()
    assert result.records == {}
    assert result.corrupted == tmp_path / "checkpoint.json.corrupt-0"
    assert result.corrupted.exists() and not cp.path.exists()
    cp.path.write_text("{")
    assert cp.load().corrupted == tmp_path / "checkpoint.json.corrupt-1"


def test_other_boot_discards_prepared_state(tmp_path: Path) -> None:
    Checkpoint(tmp_path, "boot-a").save({RECORD.uid: RECORD})
    result = Checkpoint(tmp_path, "boot-b").load()
    assert result.records == {} and result.boot_changed and result.corrupted is None


def test_record_json_is_the_dataclass_fields_with_the_state_value() -> None:
    """The hand-built ``to_json`` keeps the file format ``dataclasses.asdict`` defined."""
    expected = dataclasses.asdict(RECORD)
    expected["state"] = RECORD.state.value
    assert json.dumps(RECORD.to_json(), sort_keys=True) == json.dumps(expected, sort_keys=True)
    bare = ClaimRecord(uid=ClaimUID("u2"), namespace="ns", name="d", state=ClaimState.PREPARE_STARTED)
    expected = {**dataclasses.asdict(bare), "state": "PrepareStarted"}
    assert json.dumps(bare.to_json(), sort_keys=True) == json.dumps(expected, sort_keys=True)


def _short_os_write(monkeypatch: pytest.MonkeyPatch, chunk: int, stall_after: int | None = None) -> None:
    """``os.write`` writes at most ``chunk`` bytes a call (and nothing once ``stall_after`` are written)."""
    real_write = os.write
    total = [0]

    def write(fd: int, data: bytes) -> int:
        limit = chunk if stall_after is None else max(0, min(chunk, stall_after - total[0]))
        written = real_write(fd, bytes(data[:limit])) if limit else 0
        total[0] += written
        return written

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("split", [False, True], ids=["save", "begin+end"])
def test_short_writes_still_write_the_whole_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split: bool
) -> None:
    cp = Checkpoint(tmp_path, "boot-a")
    records = {ClaimUID(f"u{i}"): dataclasses.replace(RECORD, uid=ClaimUID(f"u{i}")) for i in range(20)}
    _short_os_write(monkeypatch, 97)
    if split:
        cp.end_write(cp.begin_write(records))
    else:
        cp.save(records)
    monkeypatch.undo()
    assert cp.load().records == records


def test_a_write_that_stops_short_raises_and_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cp = Checkpoint(tmp_path, "boot-a")
    cp.save({RECORD.uid: RECORD})
    before = cp.path.read_bytes()
    records = {ClaimUID(f"u{i}"): dataclasses.replace(RECORD, uid=ClaimUID(f"u{i}")) for i in range(20)}
    _short_os_write(monkeypatch, 97, stall_after=1000)
    with pytest.raises(OSError, match="short write"):
        cp.save(records)
    with pytest.raises(OSError, match="short write"):
        cp.begin_write(records)
    monkeypatch.undo()
    assert cp.path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]
    assert cp.load().records == {RECORD.uid: RECORD}
