"""Prepare/unprepare as the gRPC server calls them (``prepare_async``/``unprepare_async`` on an event loop):
the same results, checks, exclusivity and crash-safety rules as the threaded path."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gpupolicy.plugin.kubelet.checkpoint import ClaimState
from gpupolicy.plugin.kubelet.claims import ClaimRef, PrepareResult
from gpupolicy.policy.gpu import Publish
from gpupolicy.policy.k8s.ids import ClaimUID
from tests.plugin.kubelet.helpers import DYNAMIC, NODE, Node, make_node, plugin_errors

_T = TypeVar("_T")


def _run(make: Callable[[], Awaitable[_T]]) -> _T:
    async def main() -> _T:
        return await make()

    return asyncio.run(main())


def _prepare(node: Node, claims: list[ClaimRef], executor: ThreadPoolExecutor) -> dict[str, PrepareResult]:
    return _run(lambda: node.preparer.prepare_async(claims, executor))


def test_plain_claim_on_the_loop_matches_the_threaded_path(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    node = make_node(tmp_path)
    on_loop = node.add_claim("c1", [("gpu", "gpu-2")])
    threaded = node.add_claim("c2", [("gpu", "gpu-3")])
    first = _prepare(node, [on_loop], executor)[on_loop.uid]
    other = node.preparer.prepare([threaded])[threaded.uid]
    assert first.error == "" and other.error == ""
    (device,) = first.devices
    assert (device.pool_name, device.device_name, device.request_names) == (NODE, "gpu-2", ("gpu",))
    assert device.cdi_device_ids == (f"k8s.gpu.gpupolicy.dev/claim={on_loop.uid}-gpu-2",)
    spec = json.loads(node.cdi.spec_path(on_loop.uid).read_text())
    assert {"path": "/dev/nvidia2"} in spec["devices"][0]["containerEdits"]["deviceNodes"]
    on_disk = node.checkpoint.load().records
    assert on_disk[ClaimUID(on_loop.uid)].state is ClaimState.PREPARE_COMPLETED
    assert on_disk[ClaimUID(on_loop.uid)].cdi_file == str(node.cdi.spec_path(on_loop.uid))
    node.kube.reachable = False  # a completed claim is answered from the checkpoint
    assert _prepare(node, [on_loop], executor)[on_loop.uid] == first
    node.kube.reachable = True
    assert _run(lambda: node.preparer.unprepare_async([on_loop, threaded], executor)) == {
        on_loop.uid: "",
        threaded.uid: "",
    }
    assert node.cdi_files() == [] and node.checkpoint.load().records == {}


@pytest.mark.parametrize(
    ("mutate", "message", "code"),
    [
        (lambda c: c["metadata"].update(uid="other"), "has UID", "claim_replaced"),
        (
            lambda c: c["status"]["allocation"]["devices"]["results"][0].update(pool="node-b"),
            "this node's pool",
            "wrong_pool",
        ),
        (lambda c: c["status"].pop("allocation"), "not allocated", "not_allocated"),
        (
            lambda c: c["status"]["allocation"]["devices"]["results"][0].update(device="gpu-9"),
            "not published",
            "unknown_device",
        ),
    ],
)
def test_claim_checks(tmp_path: Path, executor: ThreadPoolExecutor, mutate: Any, message: str, code: str) -> None:
    node = make_node(tmp_path)
    claim = node.add_claim("c1", [("gpu", "gpu-2")])
    mutate(node.kube.claims[("default", "c1")])
    result = _prepare(node, [claim], executor)[claim.uid]
    assert message in result.error and result.devices == ()
    assert node.cdi_files() == [] and node.preparer.records == {}
    assert plugin_errors(node) == {("prepare", code): 1}


def test_unreachable_api_fails_the_claim(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    node = make_node(tmp_path)
    claim = node.add_claim("c1", [("gpu", "gpu-2")])
    node.kube.reachable = False
    assert "cannot read ResourceClaim default/c1" in _prepare(node, [claim], executor)[claim.uid].error
    assert node.preparer.prepare([claim])[claim.uid].error  # the threaded path counts the same way
    assert plugin_errors(node) == {("prepare", "claim_unreadable"): 2}


def test_mig_and_sharing_claims_take_the_threaded_steps(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    node = make_node(tmp_path, publish_for=lambda g, _v: DYNAMIC if g.mig_enabled else Publish())
    mig = node.add_claim("mig", [("a", "gpu-0-mig-3g20gb-9-4")])
    timesliced = node.add_claim(
        "ts",
        [("gpu", "gpu-3")],
        config=[
            {
                "source": "FromClaim",
                "opaque": {
                    "driver": "gpu.gpupolicy.dev",
                    "parameters": {
                        "apiVersion": "resource.gpupolicy.dev/v1alpha1",
                        "kind": "GpuConfig",
                        "sharing": {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Long"}},
                    },
                },
            }
        ],
    )
    results = _prepare(node, [mig, timesliced], executor)
    assert [r.error for r in results.values()] == ["", ""]
    assert node.mig_instances() == [(0, "3g.20gb", 4)]
    assert node.runner.state["timeslice"] != {}
    assert _run(lambda: node.preparer.unprepare_async([mig, timesliced], executor)) == {mig.uid: "", timesliced.uid: ""}
    assert node.mig_instances() == [] and node.runner.state["timeslice"] == {}


def test_concurrent_prepares_of_one_device_one_winner(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    node = make_node(tmp_path)
    claims = [node.add_claim(f"c{i}", [("gpu", "gpu-3")]) for i in range(8)]

    async def run() -> list[dict[str, PrepareResult]]:
        return await asyncio.gather(*(node.preparer.prepare_async([c], executor) for c in claims))

    errors = [e.error for r in asyncio.run(run()) for e in r.values()]
    assert sorted(e == "" for e in errors) == [False] * 7 + [True]
    assert len(node.cdi_files()) == 1


def test_one_claim_sent_twice_at_once_is_prepared_once(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    node = make_node(tmp_path)
    claim = node.add_claim("c1", [("gpu", "gpu-2")])

    async def run() -> list[dict[str, PrepareResult]]:
        return await asyncio.gather(*(node.preparer.prepare_async([claim], executor) for _ in range(4)))

    results = [r[claim.uid] for r in asyncio.run(run())]
    assert results[0].error == "" and all(r == results[0] for r in results)
    assert node.kube.calls.count("get_claim") == 1  # the others were answered from the completed record


def test_a_claim_whose_completed_state_cannot_be_written_is_not_reported_prepared(
    tmp_path: Path, executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node(tmp_path)
    claim = node.add_claim("c1", [("gpu", "gpu-2")])
    save = node.checkpoint.end_write

    def disk_full(pending):  # type: ignore[no-untyped-def]
        os.close(pending[0])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(node.checkpoint, "end_write", disk_full)
    failed = _prepare(node, [claim], executor)[claim.uid]
    assert "cannot record the prepared claim" in failed.error and failed.devices == ()
    assert node.preparer.records[ClaimUID(claim.uid)].state is ClaimState.PREPARE_STARTED
    node.kube.reachable = False  # the retry does not answer from the unwritten record
    assert "cannot read ResourceClaim" in _prepare(node, [claim], executor)[claim.uid].error
    node.kube.reachable = True
    monkeypatch.setattr(node.checkpoint, "end_write", save)
    assert _prepare(node, [claim], executor)[claim.uid].error == ""  # rolled back and prepared again
    assert node.checkpoint.load().records[ClaimUID(claim.uid)].state is ClaimState.PREPARE_COMPLETED
    assert node.cdi_files() == [claim.uid]
    assert plugin_errors(node) == {("prepare", "checkpoint_failed"): 1, ("prepare", "claim_unreadable"): 1}


def test_a_cancelled_call_still_finishes_its_claims(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    """As a thread would: kubelet giving up on a call must not leave a claim half prepared."""
    node = make_node(tmp_path)
    claims = [node.add_claim(f"c{i}", [("gpu", f"gpu-{i}")]) for i in range(4)]

    async def run() -> None:
        call = asyncio.ensure_future(node.preparer.prepare_async(claims, executor))
        await asyncio.sleep(0)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        for _ in range(200):  # the claims go on to the end
            if len(node.checkpoint.load().records) == len(claims):
                break
            await asyncio.sleep(0.01)

    asyncio.run(run())
    states = {r.state for r in node.checkpoint.load().records.values()}
    assert states == {ClaimState.PREPARE_COMPLETED} and len(node.cdi_files()) == len(claims)


def test_an_unprepare_whose_removal_cannot_be_written_fails_and_is_retried(
    tmp_path: Path, executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node(tmp_path)
    claim = node.add_claim("c1", [("gpu", "gpu-2")])
    assert _prepare(node, [claim], executor)[claim.uid].error == ""
    save = node.checkpoint.end_write

    def disk_full(pending):  # type: ignore[no-untyped-def]
        os.close(pending[0])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(node.checkpoint, "end_write", disk_full)
    failed = _run(lambda: node.preparer.unprepare_async([claim], executor))
    assert "will be retried" in failed[claim.uid]
    assert plugin_errors(node) == {("unprepare", "teardown_failed"): 1}
    assert ClaimUID(claim.uid) in node.preparer.records  # not forgotten while the checkpoint still has it
    monkeypatch.setattr(node.checkpoint, "end_write", save)
    assert _run(lambda: node.preparer.unprepare_async([claim], executor)) == {claim.uid: ""}
    assert node.checkpoint.load().records == {} and node.cdi_files() == []
