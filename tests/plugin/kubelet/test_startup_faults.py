"""Start-up never ends in a crash loop: a damaged checkpoint of any kind (a folder in its place, nesting that
overflows the parser, records that pass their checksums but that the plugin could not act on safely), a
read-only or full state folder all start the plugin degraded, with an Event and the records rebuilt where
the API server allows. Start-up writes nothing that did not change, and removes the temporary files of
writes a kill interrupted."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin import fsutil
from gpupolicy.plugin.kubelet.checkpoint import ClaimState
from gpupolicy.plugin.kubelet.checkpoint_schema import canonical, claim_checksum, header_checksum
from gpupolicy.plugin.kubelet.driver import BOOT_ID_ENV
from tests.fakes.kube_stub import StubApiServer
from tests.plugin.kubelet.helpers import DRIVER, NODE, PluginNode, claim_obj, opaque, ref, until
from tests.plugin.kubelet.proc import PluginProcess

MPS = {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 50}}


@pytest.fixture(autouse=True)
def boot_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BOOT_ID_ENV, "boot-1")  # the boot the checkpoints below were written in


def _reasons(node: PluginNode) -> list[str]:
    return [e["reason"] for e in node.kube.events]


def _checkpoint(boot: str, claims: Any) -> str:
    """A version-2 checkpoint of ``claims`` with every checksum right (whatever the claims are)."""
    sums = {uid: claim_checksum(canonical(c)) for uid, c in claims.items()} if isinstance(claims, dict) else {}
    checksum = header_checksum(json.dumps(boot), canonical(sums))
    return canonical({"bootId": boot, "checksum": checksum, "claimChecksums": sums, "claims": claims, "version": 2})


def _started(uid: str, **fields: Any) -> dict[str, Any]:
    """A ``PrepareStarted`` claim: start-up acts on it (rolls it back) at once."""
    return {"uid": uid, "namespace": "default", "name": "c", "state": "PrepareStarted", **fields}


# --- damaged checkpoints ----------------------------------------------------------------------


def _precious(tmp: Path) -> Path:
    folder = tmp / "precious"
    folder.mkdir(exist_ok=True)
    (folder / "data").write_text("keep me")
    return folder


DAMAGED: dict[str, Callable[[Path], str]] = {
    "nested-200000-levels": lambda tmp: '{"version":2,"claims":' + "[" * 200_000 + "]" * 200_000 + "}",
    "claims-of-the-wrong-type": lambda tmp: _checkpoint("boot-1", ["u-1"]),
    "time-slicing-no-gpu": lambda tmp: _checkpoint(
        "boot-1", {"u-1": _started("u-1", sharing=[{"strategy": "TimeSlicing", "gpu_uuids": []}])}
    ),
    "uid-with-a-nul": lambda tmp: _checkpoint("boot-1", {"u\x00x": _started("u\x00x")}),
    "uid-too-long": lambda tmp: _checkpoint("boot-1", {"u" * 300: _started("u" * 300)}),
    "uid-with-a-slash": lambda tmp: _checkpoint("boot-1", {"../../x": _started("../../x")}),
    "key-is-not-the-uid": lambda tmp: _checkpoint("boot-1", {"u-1": _started("u-2")}),
    "mps-folder-outside-the-state": lambda tmp: _checkpoint(
        "boot-1",
        {"u-1": _started("u-1", sharing=[{"strategy": "MPS", "gpu_uuids": [], "mps_dir": str(_precious(tmp))}])},
    ),
}


@pytest.mark.parametrize("damage", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_checkpoint_starts_the_plugin_degraded_never_a_crash(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    node = PluginNode(tmp_path)
    (node.state / "checkpoint.json").write_text(damage(tmp_path))
    plugin = node.plugin()
    try:
        assert (node.state / "checkpoint.json.corrupt-0").exists() and plugin.report.rebuilt == []
        assert node.preparer(plugin).records == {}
        assert until(lambda: "CheckpointCorrupted" in _reasons(node))
        claim = ref(node.kube.put_claim(claim_obj("c", [("g", "gpu-2")])))
        assert node.preparer(plugin).prepare([claim])[claim.uid].error == ""  # and it serves
    finally:
        plugin.stop()
    if (tmp_path / "precious").exists():
        assert (tmp_path / "precious" / "data").read_text() == "keep me"


def test_a_folder_in_place_of_the_checkpoint_is_moved_aside(tmp_path: Path) -> None:
    node = PluginNode(tmp_path)
    plugin = node.plugin()
    claim = ref(node.kube.put_claim(claim_obj("c", [("m", "gpu-0-mig-3g20gb-9-4")])))
    assert node.preparer(plugin).prepare([claim])[claim.uid].error == ""
    plugin.stop()
    (node.state / "checkpoint.json").unlink()
    (node.state / "checkpoint.json").mkdir()
    (node.state / "checkpoint.json" / "x").write_text("?")
    plugin = node.plugin()
    try:
        assert (node.state / "checkpoint.json.corrupt-0" / "x").exists()
        assert plugin.report.rebuilt == [claim.uid] and "cannot be read" in node.kube.events[0]["message"]
        assert node.preparer(plugin).unprepare([claim]) == {claim.uid: ""}
        assert json.loads((node.state / "checkpoint.json").read_text())["claims"] == {}
    finally:
        plugin.stop()


def test_a_plugin_process_with_a_folder_for_a_checkpoint_keeps_serving(tmp_path: Path) -> None:
    api = StubApiServer().start()
    api.kube.put_node(NODE)
    process = PluginProcess(tmp_path, api.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        (process.state_dir / "checkpoint.json").mkdir(parents=True)
        doc = api.kube.put_claim(claim_obj("plain", [("gpu", "gpu-3")]))
        claim = ("default", doc["metadata"]["uid"], "plain")
        process.start()
        kubelet = process.kubelet()
        assert kubelet.prepare([claim]).claims[claim[1]].error == "", process.logs()
        assert process.proc is not None and process.proc.poll() is None
        assert process.terminate() == 0
        kubelet.close()
    finally:
        process.kill()
        api.stop()


# --- a read-only or full state folder ---------------------------------------------------------


class Unwritable:
    """Every change under ``root`` fails with ``code`` (the simulated GPU's and commands' files aside: they stand
    for hardware, not for the plugin's state)."""

    SPARED = ("sim-nvml.json", "cmd.json")

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path, code: int) -> None:
        self.root, self.code, self.on = str(root), code, True
        real_open, real_replace, real_unlink, real_mkdir = os.open, os.replace, os.unlink, os.mkdir

        def refuse(*paths: Any) -> None:
            for path in paths:
                text = os.fspath(path)
                if self.on and text.startswith(self.root) and not any(s in text for s in self.SPARED):
                    raise OSError(code, os.strerror(code), text)

        def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                refuse(path)
            return real_open(path, flags, *args, **kwargs)

        def replace(src: Any, dst: Any, **kwargs: Any) -> None:
            refuse(src, dst)
            real_replace(src, dst, **kwargs)

        def unlink(path: Any, **kwargs: Any) -> None:
            refuse(path)
            real_unlink(path, **kwargs)

        def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
            refuse(path)
            real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", open_)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "unlink", unlink)
        monkeypatch.setattr(os, "mkdir", mkdir)


def test_a_read_only_state_folder_with_a_damaged_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = PluginNode(tmp_path)
    plugin = node.plugin()
    claim = ref(node.kube.put_claim(claim_obj("c", [("m", "gpu-0-mig-3g20gb-9-4")])))
    assert node.preparer(plugin).prepare([claim])[claim.uid].error == ""
    plugin.stop()
    (node.state / "checkpoint.json").write_text("{")
    Unwritable(monkeypatch, node.state, errno.EROFS)
    plugin = node.plugin()
    try:
        assert (node.state / "checkpoint.json").read_text() == "{"  # could not be moved: left in place
        assert plugin.report.rebuilt == [claim.uid] and "Read-only file system" in plugin.report.unwritable
        assert until(lambda: {"CheckpointCorrupted", "StateUnwritable"} <= set(_reasons(node)))
        preparer = node.preparer(plugin)
        assert preparer.prepare([claim])[claim.uid].error == ""  # answered from the rebuilt record
        other = ref(node.kube.put_claim(claim_obj("o", [("g", "gpu-2")])))
        failed = preparer.prepare([other])[other.uid]
        assert "cannot record the prepared claim" in failed.error and "Read-only" in failed.error
    finally:
        plugin.stop()


def test_a_full_state_folder_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first start (``gpu-modes.json`` to write) and a start with a prepare to roll back (a checkpoint
    write) on a full disk: the plugin starts and serves; once there is room again, writes work."""
    node = PluginNode(tmp_path)
    full = Unwritable(monkeypatch, node.state, errno.ENOSPC)
    plugin = node.plugin()
    plugin.stop()
    assert "StateUnwritable" in _reasons(node) and not (node.state / "gpu-modes.json").exists()
    full.on = False
    plugin = node.plugin()
    claim = ref(
        node.kube.put_claim(claim_obj("c", [("m", "gpu-0-mig-3g20gb-9-4")], config=[opaque("MigDeviceConfig", MPS)]))
    )
    preparer = node.preparer(plugin)
    record = preparer._start(
        claim, *preparer._plan(claim, *preparer._check(claim, node.kube.get_claim("default", "c")))
    )
    assert record.state is ClaimState.PREPARE_STARTED  # persisted: a prepare a kill interrupted
    plugin.stop()
    full.on = True
    node.kube.events.clear()
    plugin = node.plugin()
    try:
        assert plugin.report.rolled_back == [claim.uid] and "No space left" in plugin.report.unwritable
        assert until(lambda: "StateUnwritable" in _reasons(node))
        failed = node.preparer(plugin).prepare([claim])[claim.uid]
        assert "No space left" in failed.error
        full.on = False
        assert node.preparer(plugin).prepare([claim])[claim.uid].error == ""
    finally:
        plugin.stop()


def test_a_start_rewrites_no_file_that_did_not_change(tmp_path: Path) -> None:
    node = PluginNode(tmp_path)
    plugin = node.plugin()
    claim = ref(node.kube.put_claim(claim_obj("c", [("m", "gpu-0-mig-3g20gb-9-4")])))
    assert node.preparer(plugin).prepare([claim])[claim.uid].error == ""
    plugin.stop()

    def stamps() -> dict[str, tuple[int, int]]:
        return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(node.state.iterdir()) if p.is_file()}

    before = stamps()
    assert {"checkpoint.json", "gpu-modes.json"} <= set(before)
    node.plugin().stop()
    assert stamps() == before


# --- temporary files of interrupted writes ------------------------------------------------------


def test_start_up_removes_the_temporary_files_of_interrupted_writes(tmp_path: Path) -> None:
    node = PluginNode(tmp_path)
    cdi = tmp_path / "cdi"
    cdi.mkdir()
    dead = _dead_pid()
    live_other = os.getppid()  # a running process that is not this one: its writes may be under way
    stale = [
        node.state / f".checkpoint.json.tmp-{dead}-140000000000001",
        node.state / f".gpu-modes.json.tmp-{os.getpid()}-1",  # this process, a thread that does not run
        cdi / f".k8s.{DRIVER}-claim_u-1.json.tmp-{dead}-2",
    ]
    kept = [
        node.state / f".checkpoint.json.tmp-{live_other}-3",
        cdi / f".k8s.other.driver-claim_u-1.json.tmp-{dead}-4",  # another driver's
        node.state / "checkpoint.json.tmp-1-1",  # not a name fsutil gives
    ]
    for path in stale + kept:
        path.write_text("half a write")
    plugin = node.plugin()
    try:
        assert [p for p in stale if p.exists()] == [] and [p for p in kept if not p.exists()] == []
    finally:
        plugin.stop()


def _dead_pid() -> int:
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError, match="I/O error"):
        fsutil.write_atomic(tmp_path / "f", b"data")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
