"""Unprepare is two-phase: ``UnprepareStarted`` is recorded before anything is torn down, so a failed write (or
a kill) after the teardown began never leaves a claim that a later prepare answers from a record whose CDI
spec, MIG instances or MPS daemon are gone; that prepare finishes the teardown and sets the claim up afresh.
MIG instances are destroyed only by the IDs their record names."""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.kubelet.checkpoint import ClaimRecord, ClaimState, MigOp
from gpupolicy.plugin.kubelet.claims import ClaimRef
from gpupolicy.policy.gpu import Mode, Publish
from gpupolicy.policy.k8s.ids import ClaimUID
from tests.plugin.kubelet.helpers import Node, dynamic_a100, make_node, opaque

MPS = {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 50}}


def _mig_mps_claim(node: Node) -> ClaimRef:
    return node.add_claim("c", [("m", "gpu-0-mig-3g20gb-9-4")], config=[opaque("MigDeviceConfig", MPS)])


def _fail_writes_without(node: Node, uid: str, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """Checkpoint writes that no longer hold claim ``uid`` fail as on a full disk (``method``: ``save``, the
    threaded path's write, or ``begin_write``, the event loop's)."""
    real = getattr(node.checkpoint, method)

    def write(records: dict[ClaimUID, ClaimRecord]) -> Any:
        if ClaimUID(uid) not in records:
            raise OSError(28, "No space left on device")
        return real(records)

    monkeypatch.setattr(node.checkpoint, method, write)


def _assert_set_up(node: Node, claim: ClaimRef) -> None:
    assert node.cdi_files() == [claim.uid]
    assert node.mig_instances() == [(0, "3g.20gb", 4)]
    assert len(node.runner.state["mps"]) == 1


def test_a_prepare_after_an_unprepare_whose_last_write_failed_sets_the_claim_up_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node(tmp_path, publish_for=dynamic_a100)
    claim = _mig_mps_claim(node)
    assert node.preparer.prepare([claim])[claim.uid].error == ""
    first = node.mig_instances()
    _fail_writes_without(node, claim.uid, monkeypatch, "save")
    assert "will be retried" in node.preparer.unprepare([claim])[claim.uid]
    assert node.cdi_files() == [] and node.mig_instances() == [] and node.runner.state["mps"] == {}
    assert node.preparer.records[ClaimUID(claim.uid)].state.value == "UnprepareStarted"
    assert node.checkpoint.load().records[ClaimUID(claim.uid)].state.value == "UnprepareStarted"
    monkeypatch.undo()
    assert node.preparer.prepare([claim])[claim.uid].error == ""  # not answered from the torn-down record
    _assert_set_up(node, claim)
    assert node.checkpoint.load().records[ClaimUID(claim.uid)].state is ClaimState.PREPARE_COMPLETED
    assert node.mig_instances() == first
    assert node.preparer.unprepare([claim]) == {claim.uid: ""}
    assert node.cdi_files() == [] and node.mig_instances() == [] and node.checkpoint.load().records == {}


def test_an_unprepare_whose_first_write_fails_tears_nothing_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node(tmp_path, publish_for=dynamic_a100)
    claim = _mig_mps_claim(node)
    assert node.preparer.prepare([claim])[claim.uid].error == ""

    def disk_full(records):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(node.checkpoint, "save", disk_full)
    assert "will be retried" in node.preparer.unprepare([claim])[claim.uid]
    assert node.preparer.records[ClaimUID(claim.uid)].state is ClaimState.PREPARE_COMPLETED
    _assert_set_up(node, claim)  # still set up, and still answered as prepared
    assert node.preparer.prepare([claim])[claim.uid].error == ""


def test_a_shared_mps_daemon_stopped_by_an_unfinished_unprepare_is_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last claim of a shared GPU stops its MPS daemon; if dropping its record then fails, a prepare of that
    claim must start the daemon again rather than report the claim prepared against a stopped daemon."""
    policy = Publish(mode=Mode.MPS, shares=4)
    node = make_node(tmp_path, publish_for=lambda g, v: policy)
    a = node.add_claim("a", [("gpu", "gpu-2")], share_ids={"gpu-2": "s-a"})
    b = node.add_claim("b", [("gpu", "gpu-2")], share_ids={"gpu-2": "s-b"})
    assert [r.error for r in node.preparer.prepare([a, b]).values()] == ["", ""]
    assert node.preparer.unprepare([b]) == {b.uid: ""} and len(node.runner.state["mps"]) == 1
    _fail_writes_without(node, a.uid, monkeypatch, "save")
    assert "will be retried" in node.preparer.unprepare([a])[a.uid]
    assert node.runner.state["mps"] == {}  # a was the last: its teardown stopped the daemon
    monkeypatch.undo()
    assert node.preparer.prepare([a])[a.uid].error == ""
    assert len(node.runner.state["mps"]) == 1 and node.cdi_files() == [a.uid]
    c = node.add_claim("c", [("gpu", "gpu-2")], share_ids={"gpu-2": "s-c"})
    assert node.preparer.prepare([c])[c.uid].error == ""
    assert node.preparer.unprepare([a]) == {a.uid: ""} and len(node.runner.state["mps"]) == 1  # c holds it
    assert node.preparer.unprepare([c]) == {c.uid: ""} and node.runner.state["mps"] == {}


def test_the_event_loop_path_records_unprepare_started_too(
    tmp_path: Path, executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node(tmp_path, publish_for=dynamic_a100)
    claim = _mig_mps_claim(node)

    def call(coro: Any) -> Any:
        async def main() -> Any:
            return await coro

        return asyncio.run(main())

    assert call(node.preparer.prepare_async([claim], executor))[claim.uid].error == ""
    _fail_writes_without(node, claim.uid, monkeypatch, "save")  # a claim with MIG or sharing: on a thread
    _fail_writes_without(node, claim.uid, monkeypatch, "begin_write")
    assert "will be retried" in call(node.preparer.unprepare_async([claim], executor))[claim.uid]
    monkeypatch.undo()
    assert node.preparer.records[ClaimUID(claim.uid)].state.value == "UnprepareStarted"
    assert call(node.preparer.prepare_async([claim], executor))[claim.uid].error == ""
    _assert_set_up(node, claim)
    assert call(node.preparer.unprepare_async([claim], executor)) == {claim.uid: ""}
    assert node.cdi_files() == [] and node.mig_instances() == []


def test_a_plain_claim_is_dropped_before_its_cdi_spec_is_removed(
    tmp_path: Path, executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole GPU without sharing: a failed write keeps it prepared with its spec (both paths)."""
    node = make_node(tmp_path)
    claim = node.add_claim("g", [("gpu", "gpu-2")])
    assert node.preparer.prepare([claim])[claim.uid].error == ""
    _fail_writes_without(node, claim.uid, monkeypatch, "save")
    assert "will be retried" in node.preparer.unprepare([claim])[claim.uid]
    assert node.cdi_files() == [claim.uid]
    assert node.preparer.records[ClaimUID(claim.uid)].state is ClaimState.PREPARE_COMPLETED
    monkeypatch.undo()
    _fail_writes_without(node, claim.uid, monkeypatch, "begin_write")

    async def unprepare() -> dict[str, str]:
        return await node.preparer.unprepare_async([claim], executor)

    assert "will be retried" in asyncio.run(unprepare())[claim.uid]
    assert node.cdi_files() == [claim.uid]
    monkeypatch.undo()
    assert asyncio.run(unprepare()) == {claim.uid: ""} and node.cdi_files() == []


def test_a_rollback_never_destroys_an_instance_it_did_not_record(tmp_path: Path) -> None:
    """An instance at the claim's placement that its record does not name (the claim's own live instance after
    its record was lost, or another's) is left alone when a prepare fails and is rolled back."""
    node = make_node(tmp_path, publish_for=dynamic_a100)
    claim = node.add_claim("c", [("m", "gpu-0-mig-3g20gb-9-4")])
    gpu0 = node.nvml.gpus()[0].uuid
    live = node.nvml.create_mig(gpu0, "3g.20gb", 4)
    failed = node.preparer.prepare([claim])[claim.uid]
    assert "placement_occupied" in failed.error
    assert [m.uuid for g in node.nvml.gpus() for m in g.mig_devices] == [live.uuid]


def test_a_teardown_destroys_only_the_recorded_instance(tmp_path: Path) -> None:
    """The record names GPU instance 1 with a UUID; a new instance that got the same placement and ID after the
    recorded one was destroyed (IDs are reused) is not the record's, and stays."""
    node = make_node(tmp_path, publish_for=dynamic_a100)
    gpu0 = node.nvml.gpus()[0].uuid
    old = node.nvml.create_mig(gpu0, "3g.20gb", 4)
    node.nvml.destroy_mig(gpu0, old.gi_id)
    new = node.nvml.create_mig(gpu0, "3g.20gb", 4)
    assert (new.gi_id, new.start) == (old.gi_id, old.start) and new.uuid != old.uuid
    record = ClaimRecord(
        uid=ClaimUID("u-1"),
        namespace="default",
        name="c",
        state=ClaimState.PREPARE_COMPLETED,
        mig=(MigOp(gpu0, "3g.20gb", 4, True, old.uuid, old.gi_id, old.ci_id),),
    )
    node.preparer.teardown(record)
    assert node.mig_instances() == [(0, "3g.20gb", 4)]
    node.preparer.teardown(dataclasses.replace(record, mig=(dataclasses.replace(record.mig[0], uuid=new.uuid),)))
    assert node.mig_instances() == []
