"""Holds: the annotation read back, a hold that does not read dropped, held MIG devices reserved with their siblings
on the same GPU."""

from __future__ import annotations

from pathlib import Path

from gpupolicy.plugin.controller.holds import Hold, hold_of
from gpupolicy.plugin.controller.placer import LoadCache, Settings, prepare
from gpupolicy.plugin.controller.snapshot import HOLD, Snapshot, units
from tests.plugin.controller.fakeapi import claim, example, pod, strands
from tests.plugin.controller.preemptkit import cached, cluster, controller, gated  # noqa: F401 (cached: a fixture)

FOUR_G, THREE_G = "mig-4g.gpupolicy.dev", "mig-3g.gpupolicy.dev"


def test_a_hold_reads_back_as_written() -> None:
    hold = Hold("preempted", (("b/p", "u1"),), (("b/p-gpu", "u2"),), (("d", "pool", "gpu-0"),), 1_000_000, 1_000_120)
    assert Hold.from_annotation(hold.to_annotation()) == hold
    assert '"deadline": "1970-01-12T13:48:40Z"' in hold.to_annotation()


def test_a_hold_that_does_not_read_is_dropped_not_obeyed() -> None:
    api = cluster({"n0": 1})
    gated(api, "urgent", "prod")
    stored = api.get("pods", "prod", "urgent")
    stored["metadata"]["annotations"] = {HOLD: "{not json"}
    api.put("pods", stored)
    assert hold_of(units(Snapshot.read(api))[0]) is None
    result = controller(api, [0.0], preemption=True).step(force=True)
    assert result.placed == ["pod:prod/urgent"] and HOLD not in api.get("pods", "prod", "urgent")["metadata"].get(
        "annotations", {}
    )


def test_a_held_mig_device_keeps_the_other_instances_of_its_gpu_from_other_claims() -> None:
    api = strands()
    for obj in (
        claim("held-4g", FOUR_G),
        pod("holder", ["held-4g"]),
        claim("other-3g", THREE_G),
        pod("o", ["other-3g"]),
    ):
        api.put("pods" if obj["kind"] == "Pod" else "resourceclaims", obj)
    policy = Path(example("first-fit-strands")[0])
    snapshot = Snapshot.read(api)
    todo = units(snapshot)
    settings = Settings(policy=(policy.read_text(), str(policy)))
    four = next(d.key for d in prepare(snapshot, todo, settings, LoadCache()).problem.devices if "4g40gb" in d.name)
    problem = prepare(snapshot, todo, settings, LoadCache(), {"pod:default/holder": [four]}).problem
    eligible = {c.name: [problem.devices[d].name for r in c.requests for a in r.alternatives for d in a.eligible]
                for c in problem.claims}  # fmt: skip
    assert eligible["other-3g"] == [], "every 3g instance shares the held 4g's GPU (its counter set)"
    assert four[2] in eligible["held-4g"], "the holder keeps its device"
