"""The placement controller on the real control plane: gated pods with claim templates (claims made by the real
kube-controller-manager) are allocated by the controller with the solver, then bound by the real kube-scheduler,
which honours ``allocation.nodeSelector`` and reserves the claims; our verifier accepts every allocation."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.controller.report import CONDITION
from gpupolicy.plugin.kube import Obj
from tests.e2e.conftest import Cleanup
from tests.e2e.controller.conftest import (
    FOUR_G,
    GATE,
    THREE_G,
    Driven,
    Replica,
    bound,
    devices_in_use,
    gated_pod,
    gates,
    pod_claims,
    strands_node,
    template,
    verify_live,
)
from tests.e2e.controlplane import Process
from tests.e2e.kube import Kube
from tests.e2e.test_scheduler_vs_solver import STRANDS

pytestmark = pytest.mark.testbed


def live_claims(kube: Kube, namespace: str) -> list[Obj]:
    return kube.list("resource.k8s.io/v1", "ResourceClaim", namespace)


def wait_bound(kube: Kube, namespace: str, pods: list[str], timeout_s: float = 60, *logs: Replica) -> dict[str, str]:
    try:
        kube.wait_for(f"pods {pods} bound", lambda: all(bound(kube, namespace, p) for p in pods), timeout_s)
    except AssertionError as exc:
        states = {p: kube.get("v1", "Pod", p, namespace).get("status") for p in pods}
        claims = [(c["metadata"]["name"], c.get("status")) for c in live_claims(kube, namespace)]
        tails = "\n".join(r.logs()[-3000:] for r in logs)
        raise AssertionError(f"{exc}\npods: {states}\nclaims: {claims}\ncontroller logs:\n{tails}") from None
    return {p: str(bound(kube, namespace, p)) for p in pods}


def placement_condition(kube: Kube, namespace: str, pod: str) -> Obj | None:
    conditions = (kube.get("v1", "Pod", pod, namespace).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == CONDITION), None)


def test_controller_places_what_the_scheduler_strands_then_the_scheduler_binds(
    kube: Kube,
    cleanup: Cleanup,
    namespace: str,
    kube_scheduler: Process,
    kube_controller_manager: Process,
    replicas: Callable[..., Replica],
    tmp_path: Path,
) -> None:
    """examples/first-fit-strands: the scheduler alone gives the 3g claim memory slots 0-3 and strands the 4g claim
    (tests/e2e/test_scheduler_vs_solver.py); gated, `gpupolicy controller run` places both, the scheduler binds."""
    inventory = tmp_path / "inventory.yaml"
    node = strands_node(kube, cleanup, inventory)
    # A long Lease and resync: the loop sleeps 10 s between passes unless a watch event wakes it.
    replica = replicas("solo", STRANDS.policy_file(), "--lease-duration=30", "--resync=30")
    kube.create(template(namespace, "three", THREE_G))
    kube.create(template(namespace, "four", FOUR_G))
    kube.wait_for("the controller to start", lambda: '"msg": "started"' in replica.logs(), timeout_s=60)
    time.sleep(1.0)  # its first pass found nothing to do
    created = time.monotonic()
    kube.create(gated_pod(namespace, "a-three-g", ["three"]))  # arrival order as in the example
    kube.create(gated_pod(namespace, "b-four-g", ["four"]))
    kube.wait_for(
        "gates removed", lambda: not gates(kube, namespace, "b-four-g") and not gates(kube, namespace, "a-three-g")
    )
    woke = time.monotonic() - created
    print(f"\ngate to ungate with watches: {woke:.1f} s")
    assert woke < 8.0, "a watch event, not the 10 s resync, started the pass"
    assert wait_bound(kube, namespace, ["a-three-g", "b-four-g"], 60, replica) == {"a-three-g": node, "b-four-g": node}

    claims = live_claims(kube, namespace)
    assert len(claims) == 2
    for claim in claims:
        status = claim["status"]
        assert status["allocation"]["nodeSelector"]["nodeSelectorTerms"][0]["matchFields"][0]["values"] == [node]
        assert [r["resource"] for r in status["reservedFor"]] == ["pods"], "reserved for its pod"
        # the controller reserved it with the allocation: the scheduler's PreBind found it reserved and wrote nothing
        managers = [m.get("manager", "") for m in claim["metadata"].get("managedFields") or []]
        assert managers and not [m for m in managers if "scheduler" in m], managers
        assert claim["metadata"]["annotations"]["gpupolicy.dev/allocated-by"] == "solo"
        assert "resource.kubernetes.io/delete-protection" in claim["metadata"]["finalizers"]
    by_pod = {c["metadata"]["name"].rsplit("-gpu0-", 1)[0]: c for c in claims}
    four = by_pod["b-four-g"]["status"]["allocation"]["devices"]["results"]
    assert [r["device"] for r in four] == ["gpu-0-mig-4g40gb-5-0"]
    assert verify_live(inventory, claims, STRANDS.policy_file()) == []

    metrics = replica.metrics()
    assert metrics("gpupolicy_controller_placed_claims_total") == 2
    assert metrics("gpupolicy_controller_is_leader") == 1
    assert '"msg": "placed"' in replica.logs()


def test_a_gang_that_does_not_fit_stays_gated_whole_with_a_reason(
    kube: Kube,
    cleanup: Cleanup,
    namespace: str,
    kube_scheduler: Process,
    kube_controller_manager: Process,
    driven: Callable[..., Driven],
    tmp_path: Path,
) -> None:
    """One pod asking for two 4g.40gb slices of the one H100 (only slot 0 holds a 4g), and a group of two pods each
    asking for one: neither fits whole, so nothing is allocated; a 3g pod in the same batch is placed."""
    strands_node(kube, cleanup, tmp_path / "inventory.yaml")
    kube.create(template(namespace, "four", FOUR_G))
    kube.create(template(namespace, "three", THREE_G))
    kube.create(gated_pod(namespace, "twin", ["four", "four"]))
    kube.create(gated_pod(namespace, "w1", ["four"], group="train"))
    kube.create(gated_pod(namespace, "w2", ["four"], group="train"))
    ctl = driven()
    ctl.until("the batch to be decided", lambda: placement_condition(kube, namespace, "w2") is not None)
    kube.create(gated_pod(namespace, "small", ["three"]))
    ctl.until("the small pod to be placed", lambda: not gates(kube, namespace, "small"))
    wait_bound(kube, namespace, ["small"])

    for pod in ("twin", "w1", "w2"):
        assert gates(kube, namespace, pod) == [GATE]
        assert all(not (c.get("status") or {}).get("allocation") for c in pod_claims(kube, namespace, pod))
        cond = placement_condition(kube, namespace, pod)
        assert cond is not None and cond["status"] == "False"
        print(f"\n{pod}: {cond['reason']}: {cond['message']}")
    twin = placement_condition(kube, namespace, "twin")
    assert twin is not None and twin["reason"] in ("CountersExhausted", "CapacityExhausted", "NoSingleNode")
    assert "4g.40gb" in twin["message"] or "taken" in twin["message"] or "node" in twin["message"]
    group = placement_condition(kube, namespace, "w1")
    assert group is not None and group["reason"] == "GroupIncomplete" and "group:" in group["message"]
    events = kube.list("v1", "Event", namespace)
    warned = Counter(e["involvedObject"]["name"] for e in events if e.get("reason") == "FailedPlacement")
    assert warned == {"twin": 1, "w1": 1, "w2": 1}, "one event per pod, not one per retry"


class Crash(BaseException):
    """The controller process dies here: not an error the controller handles (it fails one unit and goes on for
    those), but the end of the process, as KeyboardInterrupt or SystemExit would be."""


def crash_after(writes: int) -> Callable[[Any], Any]:
    def wrap(real: Any) -> Any:
        class Crashing:
            done = 0

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def update(self, kind: str, obj: Obj, *, status: bool = False) -> Obj:
                allocating = kind == "resourceclaims" and status and bool(obj["status"].get("allocation"))
                if allocating and Crashing.done >= writes:
                    raise Crash(f"killed after {writes} allocation write(s)")
                out = dict(real.update(kind, obj, status=status))  # a conflict (kube-controller-manager drops
                Crashing.done += allocating  # the finalizer of an unallocated claim) does not count
                return out

        return Crashing()

    return wrap


def test_a_restart_mid_batch_loses_and_duplicates_nothing(
    kube: Kube,
    cleanup: Cleanup,
    namespace: str,
    kube_scheduler: Process,
    kube_controller_manager: Process,
    driven: Callable[..., Driven],
    tmp_path: Path,
) -> None:
    """A group of two pods and a lone pod in one batch; the controller dies after writing one allocation (the group
    is half written). The next controller releases the half-written group and places everything once."""
    inventory = tmp_path / "inventory.yaml"
    strands_node(kube, cleanup, inventory)
    strands_node(kube, cleanup, inventory)
    kube.create(template(namespace, "four", FOUR_G))
    kube.create(template(namespace, "three", THREE_G))
    kube.create(gated_pod(namespace, "w1", ["four"], group="train"))
    kube.create(gated_pod(namespace, "w2", ["four"], group="train"))
    kube.create(gated_pod(namespace, "z-solo", ["three"]))  # after the group in the batch's order
    pods = ["w1", "w2", "z-solo"]
    kube.wait_for("claims from templates", lambda: all(pod_claims(kube, namespace, p) for p in pods))

    dying = driven(api=crash_after(1), identity="first", parallel=1)  # units one by one: the crash point is known
    with pytest.raises(Crash):
        dying.until("the crash", lambda: False, timeout_s=30)
    written = [c for c in live_claims(kube, namespace) if (c.get("status") or {}).get("allocation")]
    assert [c["metadata"]["name"].split("-gpu0-")[0] for c in written] == ["w1"], "the group is half written"
    assert all(gates(kube, namespace, p) == [GATE] for p in pods)

    after = driven(identity="second")
    after.until("every gate removed", lambda: not any(gates(kube, namespace, p) for p in pods))
    nodes = wait_bound(kube, namespace, pods)
    claims = live_claims(kube, namespace)
    assert len(claims) == 3 and all((c.get("status") or {}).get("allocation") for c in claims)
    assert nodes["w1"] != nodes["w2"], "one 4g slot per H100: the group spans both nodes"
    used = devices_in_use(kube)
    assert len(used) == len(set(used)), f"a device allocated twice: {used}"
    assert verify_live(inventory, claims, STRANDS.policy_file()) == []


def test_two_replicas_never_double_allocate(
    kube: Kube,
    cleanup: Cleanup,
    namespace: str,
    kube_scheduler: Process,
    kube_controller_manager: Process,
    replicas: Callable[..., Replica],
    tmp_path: Path,
) -> None:
    """Two `controller run` replicas share a Lease: one writes; killed without letting go, the other takes over after
    the Lease expires and places the next pods. No device is ever allocated twice."""
    inventory = tmp_path / "inventory.yaml"
    strands_node(kube, cleanup, inventory)
    strands_node(kube, cleanup, inventory)
    first, second = replicas("r1"), replicas("r2")
    kube.create(template(namespace, "four", FOUR_G))
    kube.create(template(namespace, "three", THREE_G))
    kube.create(gated_pod(namespace, "p1", ["four"]))
    kube.create(gated_pod(namespace, "p2", ["three"]))
    wait_bound(kube, namespace, ["p1", "p2"], 60, first, second)
    lease = kube.get("coordination.k8s.io/v1", "Lease", "gpupolicy-controller", namespace)
    leader, follower = (first, second) if lease["spec"]["holderIdentity"] == "r1" else (second, first)
    assert follower.metrics()("gpupolicy_controller_is_leader") == 0
    assert '"msg": "placed"' not in follower.logs(), "the follower wrote nothing"

    leader.stop(signal.SIGKILL)
    started = time.monotonic()
    kube.create(gated_pod(namespace, "p3", ["four"]))
    kube.create(gated_pod(namespace, "p4", ["three"]))
    wait_bound(kube, namespace, ["p3", "p4"], 60, follower)
    print(f"\ntakeover: the follower placed the next pods {time.monotonic() - started:.1f} s after the leader died")
    assert '"msg": "placed"' in follower.logs()
    claims = live_claims(kube, namespace)
    assert len(claims) == 4 and all((c.get("status") or {}).get("allocation") for c in claims)
    used = devices_in_use(kube)
    assert len(used) == len(set(used)), f"a device allocated twice: {used}"
    assert verify_live(inventory, claims, STRANDS.policy_file()) == []
