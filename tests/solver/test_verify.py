"""The verifier rejects what Kubernetes would reject (hand-made wrong answers)."""

from __future__ import annotations

from gpupolicy.solver.problem import ClaimKey, Constraint, DeviceIndex, DeviceResult, NodeName, Problem, Quota
from gpupolicy.solver.result import Placement, Solution
from gpupolicy.solver.verify import verify
from tests.solver.builders import DRIVER, alt, claim, eligible, gpu, mig_gpu, problem, shared_gpu


def placed(p: Problem, *entries: tuple[str, str, list[int]]) -> Solution:
    solution = Solution("hand")
    for key, node, devices in entries:
        results = tuple(DeviceResult("gpu", DeviceIndex(d)) for d in devices)
        solution.placements[ClaimKey(key)] = Placement(ClaimKey(key), NodeName(node), results)
    return solution


def test_device_used_twice_and_wrong_count() -> None:
    devices = [gpu("node-a", "gpu-0"), gpu("node-a", "gpu-1", index=1)]
    p = problem(devices, [claim("a", [alt(eligible(devices))]), claim("b", [alt(eligible(devices), count=2)])])
    errors = verify(p, placed(p, ("default/a", "node-a", [0]), ("default/b", "node-a", [0])))
    assert any("allocated 2 times" in e for e in errors)
    assert any("wants 2 devices, got 1" in e for e in errors)


def test_node_locality_and_gang_split() -> None:
    devices = [gpu("node-a", "gpu-0"), gpu("node-b", "gpu-0")]
    two = claim("two", [alt(eligible(devices), count=2)])
    x = claim("x", [alt(eligible(devices))], gang="pod")
    y = claim("y", [alt(eligible(devices))], gang="pod")
    p = problem(devices, [two, x, y])
    errors = verify(p, placed(p, ("default/two", "node-a", [0, 1])))
    assert any("not usable from node 'node-a'" in e for e in errors)
    errors = verify(p, placed(p, ("default/x", "node-a", [0]), ("default/y", "node-b", [1])))
    assert any("different nodes" in e for e in errors)
    assert any("only 1 of 2" in e for e in verify(p, placed(p, ("default/x", "node-a", [0]))))


def test_counters_capacity_constraints_quotas() -> None:
    devices, cs = mig_gpu("node-a", 0)
    three = eligible(devices, profile="3g.40gb")
    four = eligible(devices, profile="4g.40gb")
    p = problem(devices, [claim("a", [alt(three)]), claim("b", [alt(four)])], [cs])
    errors = verify(p, placed(p, ("default/a", "node-a", [three[0]]), ("default/b", "node-a", [four[0]])))
    assert any("memory-slice-0: 2 consumed exceeds 1" in e for e in errors)

    shared = [shared_gpu("node-a", "s-0", memory=10)]
    p = problem(shared, [claim("s", [alt((DeviceIndex(0),), capacity={"memory": 4})])])
    wrong = Solution("hand")
    result = DeviceResult("gpu", DeviceIndex(0), share_id="x", consumed={"memory": 3})
    wrong.placements[ClaimKey("default/s")] = Placement(ClaimKey("default/s"), NodeName("node-a"), (result,))
    assert any("consumedCapacity" in e for e in verify(p, wrong))

    numa = [gpu("node-a", f"gpu-{i}", index=i, numa=i) for i in range(2)]
    same = claim("same", [alt(eligible(numa), count=2)], constraints=(Constraint(f"{DRIVER}/numa"),))
    p = problem(numa, [same], quotas=(Quota("default", "devices", 1),))
    errors = verify(p, placed(p, ("default/same", "node-a", [0, 1])))
    assert any("matchAttribute" in e for e in errors)
    assert any("quota default/devices: 2 used exceeds 1" in e for e in errors)
