"""Claim references no API server makes (a UID that is a path, holds a NUL or is 300 characters long; a namespace or
name that is no DNS name) are refused per claim before any folder, file or API request is made of them, on the
threaded path and on the event loop; the other claims of the call are prepared. A teardown runs every step even when
one fails, and a path that would leave its root is never touched."""

from __future__ import annotations

import asyncio
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.kubelet.checkpoint import ClaimRecord, ClaimState, MigOp, SharingOp
from gpupolicy.plugin.kubelet.claims import ClaimRef, PrepareResult
from gpupolicy.plugin.kubelet.paths import UnsafePath, check_inside, child
from gpupolicy.plugin.kubelet.reconcile import reconcile
from gpupolicy.policy.k8s.ids import ClaimUID
from tests.plugin.kubelet.helpers import Node, claim_obj, dynamic_a100, make_node, opaque, plugin_errors

WAYS = ["threads", "loop"]
ESCAPE = "../../../victim"  # from <node>/state/mps: <tmp>/victim
NUL_UID = "0b0e2f1c-1111-4222-8333-444455556666\0"
LONG_UID = "a" * 300


def _node(tmp_path: Path, **kwargs: Any) -> Node:
    folder = tmp_path / "node"
    folder.mkdir()
    return make_node(folder, **kwargs)


def _prepare(node: Node, claims: list[ClaimRef], way: str, executor: ThreadPoolExecutor) -> dict[str, PrepareResult]:
    if way == "threads":
        return node.preparer.prepare(claims)
    return asyncio.run(node.preparer.prepare_async(claims, executor))


def _unprepare(node: Node, claims: list[ClaimRef], way: str, executor: ThreadPoolExecutor) -> dict[str, str]:
    if way == "threads":
        return node.preparer.unprepare(claims)
    return asyncio.run(node.preparer.unprepare_async(claims, executor))


def _claim(node: Node, name: str, results: list[tuple[str, str]], uid: str, **kwargs: Any) -> ClaimRef:
    """A claim the fake API server holds with exactly ``uid`` (as a hostile or broken client would send it)."""
    obj = claim_obj(name, results, **kwargs)
    obj["metadata"]["uid"] = uid
    node.kube.put_claim(obj)
    return ClaimRef(obj["metadata"]["namespace"], uid, name)


def _outside(tmp_path: Path) -> dict[str, bytes | None]:
    """Everything under ``tmp_path`` except the node's own folder: files with their content, folders as None."""
    out: dict[str, bytes | None] = {}
    for folder, _dirs, files in os.walk(tmp_path):
        rel = os.path.relpath(folder, tmp_path)
        if rel == "node" or rel.startswith("node" + os.sep):
            continue
        out[rel] = None
        out.update({os.path.join(rel, f): Path(folder, f).read_bytes() for f in files})
    return out


@pytest.mark.parametrize("way", WAYS)
def test_a_uid_that_is_a_path_touches_nothing_outside_the_state_folder(
    tmp_path: Path, way: str, executor: ThreadPoolExecutor
) -> None:
    node = _node(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("a running workload's file")
    before = _outside(tmp_path)
    bad = _claim(node, "bad", [("gpu", "gpu-2")], ESCAPE, config=[opaque("GpuConfig", {"strategy": "MPS"})])
    good = node.add_claim("good", [("gpu", "gpu-3")])
    results = _prepare(node, [bad, good], way, executor)
    assert results[good.uid].error == ""
    assert results[bad.uid].devices == ()
    assert "is not a UUID in lowercase RFC 4122 form" in results[bad.uid].error
    assert _outside(tmp_path) == before
    assert node.runner.state["mps"] == {}
    assert node.kube.calls == ["get_claim"], "the bad claim is never fetched"
    assert set(node.preparer.records) == {good.uid}
    assert plugin_errors(node) == {("prepare", "invalid_claim_ref"): 1}


@pytest.mark.parametrize("uid", [NUL_UID, LONG_UID], ids=["nul", "300-characters"])
@pytest.mark.parametrize("way", WAYS)
def test_a_uid_no_file_can_be_named_after_leaks_no_mig_instance(
    tmp_path: Path, way: str, uid: str, executor: ThreadPoolExecutor
) -> None:
    node = _node(tmp_path, publish_for=dynamic_a100)
    bad = _claim(node, "bad", [("m", "gpu-0-mig-3g20gb-9-4")], uid)
    good = node.add_claim("good", [("m", "gpu-1-mig-3g20gb-9-4")])
    results = _prepare(node, [bad, good], way, executor)
    assert results[good.uid].error == ""
    assert "not a UUID" in results[bad.uid].error
    assert node.mig_instances() == [(1, "3g.20gb", 4)]
    assert set(node.preparer.records) == {good.uid}
    assert set(node.checkpoint.load().records) == {good.uid}
    again = node.add_claim("again", [("m", "gpu-0-mig-3g20gb-9-4")])  # the GPU is not blocked
    assert _prepare(node, [again], way, executor)[again.uid].error == ""


REFUSED = {
    "uid-uppercase": ("default", "c", str(uuid.uuid4()).upper(), "claim UID"),
    "uid-braces": ("default", "c", "{" + str(uuid.uuid4()) + "}", "claim UID"),
    "uid-newline": ("default", "c", str(uuid.uuid4()) + "\n", "claim UID"),
    "uid-empty": ("default", "c", "", "claim UID"),
    "namespace-path": ("../kube-system", "c", str(uuid.uuid4()), "claim namespace '../kube-system' is not a DNS label"),
    "namespace-uppercase": ("Default", "c", str(uuid.uuid4()), "claim namespace"),
    "namespace-64": ("a" * 64, "c", str(uuid.uuid4()), "claim namespace"),
    "namespace-empty": ("", "c", str(uuid.uuid4()), "claim namespace"),
    "name-path": (
        "default",
        "c/../../secrets",
        str(uuid.uuid4()),
        "claim name 'c/../../secrets' is not a DNS subdomain",
    ),
    "name-254": ("default", "c" * 254, str(uuid.uuid4()), "(254 characters)"),
    "name-dash": ("default", "-c", str(uuid.uuid4()), "claim name"),
    "name-empty-label": ("default", "c..d", str(uuid.uuid4()), "claim name"),
    "name-empty": ("default", "", str(uuid.uuid4()), "claim name"),
}


@pytest.mark.parametrize(
    ("namespace", "name", "uid", "message"),
    list(REFUSED.values()),
    ids=list(REFUSED),
)
@pytest.mark.parametrize("way", WAYS)
def test_a_reference_no_api_server_makes_is_refused_before_any_request(
    tmp_path: Path, way: str, namespace: str, name: str, uid: str, message: str, executor: ThreadPoolExecutor
) -> None:
    node = _node(tmp_path)
    good = node.add_claim("good", [("gpu", "gpu-2")])
    bad = ClaimRef(namespace, uid, name)
    results = _prepare(node, [bad, good], way, executor)
    assert message in results[bad.uid].error and results[bad.uid].error.startswith("invalid claim reference: ")
    assert results[good.uid].error == ""
    assert node.kube.calls == ["get_claim"]
    assert node.cdi_files() == [good.uid]
    assert _unprepare(node, [bad], way, executor)[bad.uid] == results[bad.uid].error
    assert plugin_errors(node) == {("prepare", "invalid_claim_ref"): 1, ("unprepare", "invalid_claim_ref"): 1}


@pytest.mark.parametrize("way", WAYS)
def test_references_as_api_servers_make_them_are_accepted(
    tmp_path: Path, way: str, executor: ThreadPoolExecutor
) -> None:
    """Not stricter than the API server: version 1 UUIDs (older API servers), 63-character namespaces, dotted names
    of 253 characters."""
    node = _node(tmp_path)
    namespace = "n" * 63
    name = ".".join(["a" * 63] * 4)[:253].rstrip(".")
    assert len(name) == 253
    claims = [
        _claim(node, "v1", [("gpu", "gpu-2")], str(uuid.uuid1())),
        _claim(node, name, [("gpu", "gpu-3")], str(uuid.uuid4()), namespace=namespace),
    ]
    results = _prepare(node, claims, way, executor)
    assert [results[c.uid].error for c in claims] == ["", ""]
    assert _unprepare(node, claims, way, executor) == {c.uid: "" for c in claims}


@pytest.mark.parametrize("way", WAYS)
def test_teardown_runs_every_step_when_one_fails(
    tmp_path: Path, way: str, executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = _node(tmp_path, publish_for=dynamic_a100)
    mps = {"strategy": "MPS"}
    claim = node.add_claim("c", [("m", "gpu-0-mig-3g20gb-9-4")], config=[opaque("MigDeviceConfig", mps)])
    assert _prepare(node, [claim], way, executor)[claim.uid].error == ""
    assert node.mig_instances() and node.runner.state["mps"]
    remove = node.cdi.remove

    def broken(uid: str) -> bool:
        raise PermissionError(13, "Permission denied", str(node.cdi.spec_path(uid)))

    monkeypatch.setattr(node.cdi, "remove", broken)
    error = _unprepare(node, [claim], way, executor)[claim.uid]
    assert "will be retried" in error and "cdi: " in error and "Permission denied" in error
    assert node.mig_instances() == [], "the MIG instance is destroyed although the CDI file could not be removed"
    assert node.runner.state["mps"] == {}
    assert set(node.preparer.records) == {claim.uid}, "kept for the retry"
    monkeypatch.setattr(node.cdi, "remove", remove)
    assert _unprepare(node, [claim], way, executor) == {claim.uid: ""}
    assert node.preparer.records == {} and node.cdi_files() == []
    assert plugin_errors(node) == {("unprepare", "teardown_failed"): 1}


@pytest.mark.parametrize("way", WAYS)
def test_a_record_of_an_older_build_with_a_path_for_a_uid_is_torn_down_inside_its_roots(
    tmp_path: Path, way: str, executor: ThreadPoolExecutor
) -> None:
    """A checkpoint written before UIDs were checked may hold such a record: its MIG instance is destroyed, its
    folders outside the state folder and the CDI root are left alone."""
    node = _node(tmp_path, publish_for=dynamic_a100)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("a running workload's file")
    before = _outside(tmp_path)
    gpu = node.nvml.gpus()[0].uuid
    inst = node.nvml.create_mig(gpu, "3g.20gb", 4)
    (node.preparer.state_dir / "mps").mkdir()  # as on a node that ran MPS daemons
    mps_dir = str(node.preparer.state_dir / "mps" / ESCAPE)
    uid = ClaimUID(ESCAPE)
    node.preparer.records[uid] = ClaimRecord(
        uid=uid,
        namespace="default",
        name="old",
        state=ClaimState.PREPARE_COMPLETED,
        mig=(MigOp(gpu, "3g.20gb", 4, True, inst.uuid, inst.gi_id, inst.ci_id),),
        sharing=(SharingOp("MPS", (inst.uuid,), mps_dir=mps_dir),),
        cdi_file=f"{node.cdi.root}/k8s.gpu.gpupolicy.dev-claim_{ESCAPE}.json",
    )
    assert _unprepare(node, [ClaimRef("default", ESCAPE, "old")], way, executor) == {ESCAPE: ""}
    assert node.mig_instances() == []
    assert _outside(tmp_path) == before
    assert node.preparer.records == {}


def test_start_up_rolls_back_a_started_record_of_an_older_build_with_a_nul_in_its_uid(tmp_path: Path) -> None:
    """Its CDI file cannot be named: the roll-back removes the MIG instance anyway instead of failing the start."""
    node = _node(tmp_path, publish_for=dynamic_a100)
    gpu = node.nvml.gpus()[0].uuid
    inst = node.nvml.create_mig(gpu, "3g.20gb", 4)
    uid = ClaimUID(NUL_UID)
    node.preparer.records[uid] = ClaimRecord(
        uid=uid,
        namespace="default",
        name="old",
        state=ClaimState.PREPARE_STARTED,
        mig=(MigOp(gpu, "3g.20gb", 4, True, inst.uuid, inst.gi_id, inst.ci_id),),
    )
    report = reconcile(node.preparer, node.inventory(), node.kube, rebuild=False, state_dir=node.preparer.state_dir)
    assert report.rolled_back == [uid]
    assert node.mig_instances() == [] and node.preparer.records == {}


def test_path_builders_refuse_names_that_leave_their_root(tmp_path: Path) -> None:
    node = _node(tmp_path)
    for uid in (ESCAPE, "a/b", NUL_UID, "x" * 300):
        with pytest.raises(UnsafePath):
            node.cdi.spec_file(uid)
        with pytest.raises(UnsafePath):
            node.cdi.remove(uid)
    for name in ("..", ".", "", "a/b", "a\0", "é" * 128):
        with pytest.raises(UnsafePath):
            child(tmp_path, name)
    assert child(tmp_path, "é" * 127) == str(tmp_path / ("é" * 127))
    assert check_inside(tmp_path / "mps", str(tmp_path / "mps" / "x")) == str(tmp_path / "mps" / "x")
    for path in (tmp_path / "mps" / "x" / "..", tmp_path / "mps" / ".." / "x", tmp_path / "x", tmp_path / "mps"):
        with pytest.raises(UnsafePath):
            check_inside(tmp_path / "mps", path)
