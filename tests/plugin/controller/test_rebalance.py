"""Rebalancing proposals (dry run): moving a claim whose pod has not started frees a whole GPU; nothing is written."""

from __future__ import annotations

from pathlib import Path

from gpupolicy.plugin.controller.placer import Settings
from gpupolicy.plugin.controller.rebalance import propose
from gpupolicy.plugin.controller.snapshot import ALLOCATED_BY, Snapshot
from gpupolicy.solver.result import SolveParams
from tests.plugin.controller.fakeapi import FakeApi, allocated, claim, example, pod, strands


def two_h100s() -> FakeApi:
    return strands(("h100-0", "h100-1"))


def held(api: FakeApi, name: str, device: str, pool: str, phase: str, by_us: bool = True) -> None:
    consumer = api.put("pods", {**pod(f"pod-{name}", [name], gated=False), "status": {"phase": phase}})
    obj = claim(name, "mig-3g.gpupolicy.dev" if "3g" in device else "mig-4g.gpupolicy.dev")
    if by_us:
        obj["metadata"]["annotations"] = {ALLOCATED_BY: "replica"}
    obj["status"] = allocated(device, pool)
    obj["status"]["reservedFor"] = [{"resource": "pods", "name": f"pod-{name}", "uid": consumer["metadata"]["uid"]}]
    api.put("resourceclaims", obj)


def settings() -> Settings:
    policy = Path(example("first-fit-strands")[0])
    return Settings(policy=(policy.read_text(), str(policy)), params=SolveParams(time_limit_s=5, workers=1))


def test_moving_a_pending_claim_that_frees_a_gpu_is_proposed_not_applied() -> None:
    api = two_h100s()
    held(api, "a", "gpu-0-mig-3g40gb-9-0", "h100-0", "Pending")
    held(api, "b", "gpu-0-mig-4g40gb-5-0", "h100-1", "Pending")
    writes_before = [c for c in api.calls if c[0] != "list" and c[0] != "get"]
    proposal = propose(Snapshot.read(api), api.list("pods"), settings()).to_json()
    assert proposal["movableClaims"] == 2 and proposal["proposal"] is True and proposal["applied"] is False
    assert proposal["gpusFreed"] == 1
    assert proposal["current"]["gpus"]["idle"] == 0 and proposal["proposed"]["gpus"]["idle"] == 1
    assert len(proposal["moves"]) == 1, proposal["moves"]
    assert [c for c in api.calls if c[0] not in ("list", "get")] == writes_before, "a proposal writes nothing"


def test_started_or_foreign_claims_stay_where_they_are() -> None:
    api = two_h100s()
    held(api, "a", "gpu-0-mig-3g40gb-9-0", "h100-0", "Running")  # started: not movable
    held(api, "b", "gpu-0-mig-4g40gb-5-0", "h100-1", "Pending", by_us=False)  # the scheduler's: not ours to move
    proposal = propose(Snapshot.read(api), api.list("pods"), settings()).to_json()
    assert proposal["movableClaims"] == 0 and proposal["proposal"] is False and proposal["moves"] == []


def test_no_proposal_below_the_margin() -> None:
    api = two_h100s()
    held(api, "a", "gpu-0-mig-3g40gb-9-0", "h100-0", "Pending")
    held(api, "b", "gpu-0-mig-4g40gb-5-0", "h100-1", "Pending")
    proposal = propose(Snapshot.read(api), api.list("pods"), settings(), margin=2).to_json()
    assert proposal["gpusFreed"] == 1 and proposal["proposal"] is False and proposal["moves"] == []
