"""Prepare/unprepare on a simulated node with a fake API server."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from pathlib import Path

import pytest

from gpupolicy.plugin.kubelet.checkpoint import ClaimState
from gpupolicy.plugin.kubelet.claims import ClaimRef
from gpupolicy.policy.gpu import Mode, Publish
from gpupolicy.policy.k8s.ids import ClaimUID
from tests.plugin.kubelet.helpers import NODE, dynamic_a100, make_node, opaque


def test_full_gpu_prepare_writes_cdi_and_is_idempotent(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    claim = node.add_claim("c1", [("gpu", "gpu-2")])
    first = node.preparer.prepare([claim])[claim.uid]
    assert first.error == ""
    (device,) = first.devices
    assert (device.pool_name, device.device_name, device.request_names) == (NODE, "gpu-2", ("gpu",))
    assert device.cdi_device_ids == (f"k8s.gpu.gpupolicy.dev/claim={claim.uid}-gpu-2",)
    spec = json.loads(node.cdi.spec_path(claim.uid).read_text())
    edits = spec["devices"][0]["containerEdits"]
    assert {"path": "/dev/nvidia2"} in edits["deviceNodes"]
    uuid = node.nvml.gpus()[2].uuid
    assert f"NVIDIA_VISIBLE_DEVICES={uuid}" in edits["env"]
    node.kube.reachable = False  # a completed claim is answered from the checkpoint
    assert node.preparer.prepare([claim])[claim.uid] == first
    node.kube.reachable = True
    assert node.preparer.unprepare([claim]) == {claim.uid: ""}
    assert node.cdi_files() == []
    assert node.preparer.unprepare([claim]) == {claim.uid: ""}  # unknown claim: no-op


def test_dynamic_mig_created_at_allocated_placement_and_destroyed(tmp_path: Path) -> None:
    node = make_node(tmp_path, publish_for=dynamic_a100)
    claim = node.add_claim("mig", [("a", "gpu-0-mig-3g20gb-9-4"), ("b", "gpu-1-mig-1g5gb-19-6")])
    result = node.preparer.prepare([claim])[claim.uid]
    assert result.error == ""
    assert node.mig_instances() == [(0, "3g.20gb", 4), (1, "1g.5gb", 6)]
    spec = json.loads(node.cdi.spec_path(claim.uid).read_text())
    nodes = [n["path"] for n in spec["devices"][0]["containerEdits"]["deviceNodes"]]
    assert nodes[0] == "/dev/nvidia0" and nodes[1].startswith("/dev/nvidia-caps/nvidia-cap")
    mig_uuids = [m.uuid for g in node.nvml.gpus() for m in g.mig_devices]
    env = spec["devices"][0]["containerEdits"]["env"]
    assert env == [f"NVIDIA_VISIBLE_DEVICES={','.join(mig_uuids)}"]
    assert node.preparer.unprepare([claim]) == {claim.uid: ""}
    assert node.mig_instances() == []


def test_mig_failure_rolls_back_that_claim_only(tmp_path: Path) -> None:
    node = make_node(tmp_path, publish_for=dynamic_a100)
    node.nvml.create_mig(node.nvml.gpus()[0].uuid, "1g.5gb", 5)  # someone else's instance in the way
    bad = node.add_claim("bad", [("a", "gpu-0-mig-1g5gb-19-0"), ("b", "gpu-0-mig-3g20gb-9-4")])
    good = node.add_claim("good", [("a", "gpu-1-mig-7g40gb-0-0")])
    results = node.preparer.prepare([bad, good])
    assert "placement_occupied" in results[bad.uid].error and "rolled back" in results[bad.uid].error
    assert results[good.uid].error == ""
    assert node.mig_instances() == [(0, "1g.5gb", 5), (1, "7g.40gb", 0)]
    assert node.cdi_files() == [good.uid]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["metadata"].update(uid="other"), "has UID"),
        (lambda c: c["status"]["allocation"]["devices"]["results"][0].update(pool="node-b"), "this node's pool"),
        (lambda c: c["status"].pop("allocation"), "not allocated"),
        (lambda c: c["status"]["allocation"]["devices"]["results"][0].update(device="gpu-9"), "not published"),
    ],
)
def test_claim_checks(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    node = make_node(tmp_path)
    claim = node.add_claim("c", [("gpu", "gpu-2")])
    obj = node.kube.claims[("default", "c")]
    mutate(obj)
    result = node.preparer.prepare([claim])[claim.uid]
    assert message in result.error
    assert node.cdi_files() == [] and node.preparer.records == {}


def test_unreachable_api_fails_only_unfetched_claims(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    claim = node.add_claim("c", [("gpu", "gpu-2")])
    node.kube.reachable = False
    result = node.preparer.prepare([claim, ClaimRef("default", str(uuid.uuid4()), "other")])
    assert all("cannot read ResourceClaim" in r.error for r in result.values())
    node.kube.reachable = True
    assert node.preparer.prepare([claim])[claim.uid].error == ""


def test_device_never_prepared_for_two_claims(tmp_path: Path) -> None:
    node = make_node(tmp_path, publish_for=dynamic_a100)
    one = node.add_claim("one", [("gpu", "gpu-2")])
    two = node.add_claim("two", [("gpu", "gpu-2")])
    mig_a = node.add_claim("mig-a", [("m", "gpu-0-mig-3g20gb-9-0")])
    mig_b = node.add_claim("mig-b", [("m", "gpu-0-mig-2g10gb-14-2")])
    results = node.preparer.prepare([one, two, mig_a, mig_b])  # in parallel: either of a pair may win
    for first, second in ((one, two), (mig_a, mig_b)):
        winner, loser = (first, second) if results[first.uid].error == "" else (second, first)
        assert results[winner.uid].error == ""
        assert f"already prepared for claim default/{winner.name}" in results[loser.uid].error
    assert node.mig_instances() in ([(0, "3g.20gb", 0)], [(0, "2g.10gb", 2)])


def test_concurrent_prepares_of_one_device_one_winner(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    claims = [node.add_claim(f"c{i}", [("gpu", "gpu-3")]) for i in range(8)]
    results: dict[str, str] = {}

    def run(c: ClaimRef) -> None:
        results.update({k: v.error for k, v in node.preparer.prepare([c]).items()})

    threads = [threading.Thread(target=run, args=(c,)) for c in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e == "" for e in results.values()) == [False] * 7 + [True]
    assert len(node.cdi_files()) == 1


def test_shareable_device_prepared_for_many_claims(tmp_path: Path) -> None:
    node = make_node(tmp_path, publish_for=lambda g, v: Publish(mode=Mode.SHARES, shares=4))
    claims = [node.add_claim(f"c{i}", [("gpu", "gpu-2")], share_ids={"gpu-2": f"s{i}"}) for i in range(3)]
    results = node.preparer.prepare(claims)
    assert [r.error for r in results.values()] == ["", "", ""]
    assert [r.devices[0].share_id for r in results.values()] == ["s0", "s1", "s2"]


def test_time_slicing_from_claim_config_and_reset(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    cfg = [opaque("GpuConfig", {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Long"}})]
    claim = node.add_claim("ts", [("gpu", "gpu-2")], config=cfg)
    assert node.preparer.prepare([claim])[claim.uid].error == ""
    uuid = node.nvml.gpus()[2].uuid
    assert node.runner.state["timeslice"] == {uuid: 3}
    node.preparer.unprepare([claim])
    assert node.runner.state["timeslice"] == {}


def test_mps_daemon_per_claim_with_limits_and_mounts(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    mps = {
        "strategy": "MPS",
        "mpsConfig": {"defaultActiveThreadPercentage": 40, "defaultPinnedDeviceMemoryLimit": "8Gi"},
    }
    claim = node.add_claim("mps", [("gpu", "gpu-2"), ("gpu2", "gpu-3")], config=[opaque("GpuConfig", mps)])
    assert node.preparer.prepare([claim])[claim.uid].error == ""
    (daemon,) = node.runner.state["mps"].values()
    assert daemon["limits"] == [
        "set_default_active_thread_percentage 40",
        "set_default_device_pinned_mem_limit 0 8192M",
        "set_default_device_pinned_mem_limit 1 8192M",
    ]
    spec = json.loads(node.cdi.spec_path(claim.uid).read_text())
    edits = spec["devices"][0]["containerEdits"]
    assert "CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps" in edits["env"]
    assert edits["mounts"][0]["containerPath"] == "/tmp/nvidia-mps"
    node.preparer.unprepare([claim])
    assert node.runner.state["mps"] == {}
    assert not (tmp_path / "state" / "mps" / claim.uid).exists()


def test_policy_time_slicing_mode_applies_without_config(tmp_path: Path) -> None:
    node = make_node(tmp_path, publish_for=lambda g, v: Publish(mode=Mode.TIME_SLICING))
    claim = node.add_claim("ts", [("gpu", "gpu-3")])
    assert node.preparer.prepare([claim])[claim.uid].error == ""
    uuid = node.nvml.gpus()[3].uuid
    assert ["nvidia-smi", "compute-policy", "-i", uuid, "--set-timeslice=0"] in node.runner.calls


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([opaque("GpuConfig", {"strategy": "MPS", "bogus": 1})], "bogus: unknown field"),
        ([opaque("GpuConfig", {"strategy": "Spatial"})], "sharing.strategy"),
        ([opaque("MigDeviceConfig", {"strategy": "TimeSlicing"})], "full GPUs only"),
    ],
)
def test_invalid_config_fails_that_claim(tmp_path: Path, config, message: str) -> None:  # type: ignore[no-untyped-def]
    node = make_node(tmp_path, publish_for=dynamic_a100)
    device = "gpu-0-mig-1g5gb-19-0" if "MigDevice" in json.dumps(config) else "gpu-2"
    claim = node.add_claim("bad", [("gpu", device)], config=config)
    good = node.add_claim("good", [("gpu", "gpu-3")])
    results = node.preparer.prepare([claim, good])
    assert message in results[claim.uid].error
    assert results[good.uid].error == ""
    assert node.mig_instances() == []


def test_class_config_applies_before_claim_config(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    claim_cfg = opaque("GpuConfig", {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Short"}})
    class_cfg = opaque("GpuConfig", {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Long"}}, "FromClass")
    claim = node.add_claim("ts", [("gpu", "gpu-2")], config=[claim_cfg, class_cfg])
    assert node.preparer.prepare([claim])[claim.uid].error == ""
    assert list(node.runner.state["timeslice"].values()) == [1]


def test_interrupted_prepare_is_rolled_back_on_retry(tmp_path: Path) -> None:
    node = make_node(tmp_path, publish_for=dynamic_a100)
    claim = node.add_claim("c", [("m", "gpu-0-mig-4g20gb-5-0")])
    node.runner.state["mps"] = {}
    # Simulate a crash after the MIG instance was created and recorded (as ``_apply`` records it): a
    # PrepareStarted record naming the instance's IDs, and the instance.
    original = node.preparer._apply

    def crash(record, planned):  # type: ignore[no-untyped-def]
        dev = node.nvml.create_mig(record.mig[0].gpu_uuid, "4g.20gb", 0)
        op = dataclasses.replace(record.mig[0], uuid=dev.uuid, gi_id=dev.gi_id, ci_id=dev.ci_id)
        node.preparer._set(dataclasses.replace(record, mig=(op,)))
        raise KeyboardInterrupt

    node.preparer._apply = crash  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        node.preparer._prepare_locked(claim)
    assert node.preparer.records[ClaimUID(claim.uid)].state is ClaimState.PREPARE_STARTED
    node.preparer._apply = original  # type: ignore[method-assign]
    assert node.preparer.prepare([claim])[claim.uid].error == ""
    assert node.mig_instances() == [(0, "4g.20gb", 0)]


def test_unprepare_tolerates_partial_state(tmp_path: Path) -> None:
    node = make_node(tmp_path, publish_for=dynamic_a100)
    mps = {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 10}}
    claim = node.add_claim("c", [("m", "gpu-1-mig-3g20gb-9-0")], config=[opaque("MigDeviceConfig", mps)])
    assert node.preparer.prepare([claim])[claim.uid].error == ""
    # Somebody (or an earlier, interrupted unprepare) already removed part of it.
    node.cdi.remove(claim.uid)
    (inst,) = node.nvml.gpus()[1].mig_devices
    node.nvml.destroy_mig(inst.parent_uuid, inst.gi_id)
    node.runner.state["mps"].clear()
    assert node.preparer.unprepare([claim]) == {claim.uid: ""}
    assert node.preparer.records == {} and node.mig_instances() == []


def test_admin_access_exposes_devices_in_use_without_changing_them(tmp_path: Path) -> None:
    node = make_node(tmp_path, publish_for=dynamic_a100)
    user = node.add_claim("user", [("m", "gpu-0-mig-3g20gb-9-4"), ("g", "gpu-2")])
    assert node.preparer.prepare([user])[user.uid].error == ""
    admin = node.add_claim("admin", [("m", "gpu-0-mig-3g20gb-9-4"), ("g", "gpu-2")])
    obj = node.kube.claims[("default", "admin")]
    for result in obj["status"]["allocation"]["devices"]["results"]:
        result["adminAccess"] = True
    result = node.preparer.prepare([admin])[admin.uid]
    assert result.error == "" and len(result.devices) == 2
    spec = json.loads(node.cdi.spec_path(admin.uid).read_text())
    mig_uuid = next(m.uuid for g in node.nvml.gpus() for m in g.mig_devices)
    assert mig_uuid in spec["devices"][0]["containerEdits"]["env"][0]
    assert node.preparer.unprepare([admin]) == {admin.uid: ""}
    assert node.mig_instances() == [(0, "3g.20gb", 4)]  # the user's instance stays
    missing = node.add_claim("missing", [("m", "gpu-1-mig-7g40gb-0-0")])
    node.kube.claims[("default", "missing")]["status"]["allocation"]["devices"]["results"][0]["adminAccess"] = True
    assert "does not exist now" in node.preparer.prepare([missing])[missing.uid].error


def _env(node, claim) -> dict[str, str]:  # type: ignore[no-untyped-def]
    spec = json.loads(node.cdi.spec_path(claim.uid).read_text())
    return dict(e.split("=", 1) for e in spec["devices"][0]["containerEdits"]["env"])


def test_shared_mps_gpu_one_daemon_for_all_claims_with_client_limits(tmp_path: Path) -> None:
    policy = Publish(mode=Mode.MPS, shares=4, mps_active_thread_percentage=25, mps_pinned_memory_bytes=8 * 2**30)
    node = make_node(tmp_path, publish_for=lambda g, v: policy)
    a = node.add_claim("a", [("gpu", "gpu-2")], share_ids={"gpu-2": "s-a"})
    b = node.add_claim("b", [("gpu", "gpu-2")], share_ids={"gpu-2": "s-b"})
    node.kube.claims[("default", "b")]["status"]["allocation"]["devices"]["results"][0]["consumedCapacity"] = {
        "shares": "2",
        "memory": "20Gi",
    }
    results = node.preparer.prepare([a, b])
    assert [r.error for r in results.values()] == ["", ""]
    (daemon,) = node.runner.state["mps"].items()
    assert daemon[0].endswith(f"gpu-{node.nvml.gpus()[2].uuid}/pipe") and daemon[1]["limits"] == []
    assert _env(node, a)["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"  # the policy's default
    assert _env(node, a)["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=8192M"
    assert _env(node, b)["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "50"  # 2 of 4 shares
    assert _env(node, b)["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=20480M"  # the memory it consumed
    assert node.preparer.unprepare([a]) == {a.uid: ""}
    assert len(node.runner.state["mps"]) == 1  # b still uses it
    assert node.preparer.unprepare([b]) == {b.uid: ""}
    assert node.runner.state["mps"] == {}


def test_shared_time_sliced_gpu_reset_by_the_last_claim(tmp_path: Path) -> None:
    node = make_node(
        tmp_path, publish_for=lambda g, v: Publish(mode=Mode.TIME_SLICING, shares=4, time_slice_interval="Short")
    )
    a = node.add_claim("a", [("gpu", "gpu-3")], share_ids={"gpu-3": "s-a"})
    b = node.add_claim("b", [("gpu", "gpu-3")], share_ids={"gpu-3": "s-b"})
    assert [r.error for r in node.preparer.prepare([a, b]).values()] == ["", ""]
    uuid = node.nvml.gpus()[3].uuid
    assert node.runner.state["timeslice"] == {uuid: 1}
    node.preparer.unprepare([a])
    assert node.runner.state["timeslice"] == {uuid: 1}
    node.preparer.unprepare([b])
    assert node.runner.state["timeslice"] == {}


def test_claim_cannot_switch_a_shared_gpu_to_another_strategy(tmp_path: Path) -> None:
    node = make_node(tmp_path, publish_for=lambda g, v: Publish(mode=Mode.MPS, shares=4))
    cfg = [opaque("GpuConfig", {"strategy": "TimeSlicing"})]
    claim = node.add_claim("c", [("gpu", "gpu-2")], config=cfg, share_ids={"gpu-2": "s"})
    assert "cannot switch it to TimeSlicing" in node.preparer.prepare([claim])[claim.uid].error


def test_policy_mps_defaults_for_an_exclusive_gpu(tmp_path: Path) -> None:
    policy = Publish(mode=Mode.MPS, mps_active_thread_percentage=30, mps_pinned_memory_bytes=2**30)
    node = make_node(tmp_path, publish_for=lambda g, v: policy)
    claim = node.add_claim("c", [("gpu", "gpu-2")])
    assert node.preparer.prepare([claim])[claim.uid].error == ""
    (daemon,) = node.runner.state["mps"].values()
    assert daemon["limits"] == [
        "set_default_active_thread_percentage 30",
        "set_default_device_pinned_mem_limit 0 1024M",
    ]


@pytest.mark.parametrize("mode", [Mode.MPS, Mode.TIME_SLICING])
def test_all_claims_of_a_shared_gpu_unprepared_in_one_call_undo_its_sharing(tmp_path: Path, mode: Mode) -> None:
    node = make_node(tmp_path, publish_for=lambda g, v: Publish(mode=mode, shares=8, time_slice_interval="Short"))
    claims = [node.add_claim(f"c{i}", [("gpu", "gpu-1")], share_ids={"gpu-1": f"s-{i}"}) for i in range(6)]
    assert [r.error for r in node.preparer.prepare(claims).values()] == [""] * 6
    assert node.runner.state["mps" if mode is Mode.MPS else "timeslice"] != {}
    assert node.preparer.unprepare(claims) == {c.uid: "" for c in claims}  # in parallel
    assert node.runner.state == {"timeslice": {}, "mps": {}}
    assert node.preparer.records == {}


def test_a_claim_whose_completed_state_cannot_be_written_is_not_reported_prepared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node(tmp_path)
    claim = node.add_claim("c1", [("gpu", "gpu-2")])
    save = node.checkpoint.save

    def disk_full(records):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(node.checkpoint, "save", disk_full)
    failed = node.preparer.prepare([claim])[claim.uid]
    assert "cannot record the prepared claim" in failed.error and failed.devices == ()
    assert node.preparer.records[ClaimUID(claim.uid)].state is ClaimState.PREPARE_STARTED
    node.kube.reachable = False  # the retry does not answer from the unwritten record
    assert "cannot read ResourceClaim" in node.preparer.prepare([claim])[claim.uid].error
    node.kube.reachable = True
    monkeypatch.setattr(node.checkpoint, "save", save)
    assert node.preparer.prepare([claim])[claim.uid].error == ""  # rolled back and prepared again
    assert node.checkpoint.load().records[ClaimUID(claim.uid)].state is ClaimState.PREPARE_COMPLETED
    assert node.cdi_files() == [claim.uid]


def test_an_unprepare_whose_removal_cannot_be_written_fails_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = make_node(tmp_path)
    claim = node.add_claim("c1", [("gpu", "gpu-2")])
    assert node.preparer.prepare([claim])[claim.uid].error == ""
    save = node.checkpoint.save

    def disk_full(records):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(node.checkpoint, "save", disk_full)
    assert "will be retried" in node.preparer.unprepare([claim])[claim.uid]
    assert ClaimUID(claim.uid) in node.preparer.records  # not forgotten while the checkpoint still has it
    monkeypatch.setattr(node.checkpoint, "save", save)
    assert node.preparer.unprepare([claim]) == {claim.uid: ""}
    assert node.checkpoint.load().records == {} and node.cdi_files() == []


def test_a_prepare_whose_started_state_cannot_be_written_fails_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk before anything was set up: ``checkpoint_failed``, nothing created, no traceback."""
    node = make_node(tmp_path, publish_for=dynamic_a100)
    claim = node.add_claim("m", [("m", "gpu-0-mig-3g20gb-9-4")])
    save = node.checkpoint.save

    def disk_full(records):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(node.checkpoint, "save", disk_full)
    failed = node.preparer.prepare([claim])[claim.uid]
    assert failed.error.startswith("cannot record the prepare in the checkpoint: [Errno 28]")
    assert node.mig_instances() == [] and node.preparer.records == {}
    assert not [r for r in caplog.records if r.exc_info]
    monkeypatch.setattr(node.checkpoint, "save", save)
    assert node.preparer.prepare([claim])[claim.uid].error == ""
