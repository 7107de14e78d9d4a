"""Group commit: concurrent callers share checkpoint writes, and none returns before its change is on disk."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

import pytest

from gpupolicy.plugin.kubelet.checkpoint import Checkpoint, ClaimRecord, ClaimState, GroupCommit
from gpupolicy.policy.k8s.ids import ClaimUID


def _record(n: int) -> ClaimRecord:
    return ClaimRecord(uid=ClaimUID(f"u{n}"), namespace="ns", name=f"c{n}", state=ClaimState.PREPARE_COMPLETED)


class SlowCheckpoint(Checkpoint):
    """Saves take a while (as an fsync does), can be made to fail, and are counted."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir, "boot")
        self.saved: list[set[str]] = []
        self.fail_next = 0
        self.gate = threading.Event()
        self.gate.set()
        self.writing: set[str] = set()

    def save(self, records: dict[ClaimUID, ClaimRecord]) -> None:
        self.gate.wait(5)
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("disk full")
        super().save(records)
        self.saved.append(set(records))

    def begin_write(self, records: dict[ClaimUID, ClaimRecord]) -> tuple[int, str]:
        self.writing = set(records)
        return super().begin_write(records)

    def end_write(self, pending: tuple[int, str]) -> None:
        self.gate.wait(5)
        if self.fail_next:
            self.fail_next -= 1
            os.close(pending[0])
            raise OSError("disk full")
        super().end_write(pending)
        self.saved.append(self.writing)


class Node:
    def __init__(self, checkpoint: SlowCheckpoint) -> None:
        self.lock = threading.Lock()
        self.records: dict[ClaimUID, ClaimRecord] = {}
        self.commit = GroupCommit(self.snapshot, checkpoint)

    def snapshot(self) -> dict[ClaimUID, ClaimRecord]:
        with self.lock:
            return dict(self.records)

    def change(self, n: int) -> None:
        with self.lock:
            self.records[ClaimUID(f"u{n}")] = _record(n)
        self.commit.commit()


def _concurrently(node: Node, count: int, checkpoint: SlowCheckpoint) -> dict[int, BaseException | None]:
    """``count`` callers change and commit at once, while the first write is held back."""
    outcome: dict[int, BaseException | None] = {}
    checkpoint.gate.clear()

    def one(n: int) -> None:
        try:
            node.change(n)
            outcome[n] = None
            # what this caller changed is on disk when commit returns
            assert f"u{n}" in Checkpoint(checkpoint.path.parent, "boot").load().records
        except BaseException as exc:  # reported to the test
            outcome[n] = exc

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    threading.Timer(0.2, checkpoint.gate.set).start()
    for thread in threads:
        thread.join(10)
    return outcome


def test_concurrent_commits_share_writes_and_each_waits_for_its_own(tmp_path: Path) -> None:
    checkpoint = SlowCheckpoint(tmp_path)
    node = Node(checkpoint)
    outcome = _concurrently(node, 32, checkpoint)
    assert outcome == dict.fromkeys(range(32))
    assert len(checkpoint.saved) < 32 / 2  # shared: the callers that queue behind one write share the next
    assert checkpoint.saved[-1] == {f"u{n}" for n in range(32)}
    assert set(Checkpoint(tmp_path, "boot").load().records) == {f"u{n}" for n in range(32)}


def test_a_failed_write_fails_its_writer_and_the_others_write_again(tmp_path: Path) -> None:
    checkpoint = SlowCheckpoint(tmp_path)
    checkpoint.fail_next = 1
    node = Node(checkpoint)
    outcome = _concurrently(node, 8, checkpoint)
    failed = [n for n, exc in outcome.items() if exc is not None]
    assert len(failed) == 1 and isinstance(outcome[failed[0]], OSError)
    on_disk = set(Checkpoint(tmp_path, "boot").load().records)
    assert {f"u{n}" for n in range(8) if n not in failed} <= on_disk


def test_sequential_commits_each_write(tmp_path: Path) -> None:
    checkpoint = SlowCheckpoint(tmp_path)
    node = Node(checkpoint)
    for n in range(3):
        node.change(n)
        assert checkpoint.saved[-1] == {f"u{i}" for i in range(n + 1)}
    assert node.commit.writes == 3


@pytest.mark.parametrize("state", [ClaimState.PREPARE_STARTED, ClaimState.PREPARE_COMPLETED])
def test_a_changed_record_is_written_again(tmp_path: Path, state: ClaimState) -> None:
    checkpoint = SlowCheckpoint(tmp_path)
    node = Node(checkpoint)
    node.change(1)
    with node.lock:
        node.records[ClaimUID("u1")] = dataclasses.replace(_record(1), state=state)
    node.commit.commit()
    assert Checkpoint(tmp_path, "boot").load().records[ClaimUID("u1")].state is state


def _on_disk(checkpoint: SlowCheckpoint) -> set[str]:
    return set(Checkpoint(checkpoint.path.parent, "boot").load().records)


async def _change_async(node: Node, n: int, executor: Executor, checkpoint: SlowCheckpoint) -> None:
    with node.lock:
        node.records[ClaimUID(f"u{n}")] = _record(n)
    await node.commit.commit_async(executor)
    assert f"u{n}" in _on_disk(checkpoint)  # what this caller changed is on disk when commit returns


def test_coroutines_and_threads_share_writes_and_each_waits_for_its_own(tmp_path: Path) -> None:
    checkpoint = SlowCheckpoint(tmp_path)
    node = Node(checkpoint)
    checkpoint.gate.clear()
    threading.Timer(0.2, checkpoint.gate.set).start()

    async def run() -> list[BaseException | None]:
        with ThreadPoolExecutor(4) as executor:
            loop = asyncio.get_running_loop()
            threads = [loop.run_in_executor(None, node.change, 100 + n) for n in range(4)]
            coroutines = [_change_async(node, n, executor, checkpoint) for n in range(32)]
            return await asyncio.gather(*coroutines, *threads, return_exceptions=True)

    assert asyncio.run(run()) == [None] * 36
    assert len(checkpoint.saved) < 36 / 2
    assert _on_disk(checkpoint) == {f"u{n}" for n in range(32)} | {f"u{100 + n}" for n in range(4)}


def test_a_failed_async_write_fails_its_writer_and_the_others_write_again(tmp_path: Path) -> None:
    checkpoint = SlowCheckpoint(tmp_path)
    checkpoint.fail_next = 1
    node = Node(checkpoint)

    async def run() -> list[BaseException | None]:
        with ThreadPoolExecutor(2) as executor:
            changes = (_change_async(node, n, executor, checkpoint) for n in range(8))
            return await asyncio.gather(*changes, return_exceptions=True)

    outcome = asyncio.run(run())
    failed = [n for n, exc in enumerate(outcome) if exc is not None]
    assert len(failed) == 1 and isinstance(outcome[failed[0]], OSError)
    assert {f"u{n}" for n in range(8) if n not in failed} <= _on_disk(checkpoint)
