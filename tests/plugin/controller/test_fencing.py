"""Fencing: two controller replicas against one in-memory API whose writes can stall past the Lease's expiry.

Each replica has its own monotonic clock (advanced by the test) and its own view of the shared API; a stalled write
runs the other replica meanwhile and then lands anyway (the worst case: the API server applies a request the client
may already have given up on). Whatever the interleaving, no device may end up in two claims, and no two ungated
pods may share a device.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.controller.fence import clash
from gpupolicy.plugin.controller.leader import LeaderElector
from gpupolicy.plugin.controller.loop import Config, Controller, StepResult
from gpupolicy.plugin.controller.placer import Settings
from gpupolicy.plugin.controller.snapshot import ALLOCATED_BY, GATE
from gpupolicy.plugin.kube import Obj, Unreachable
from gpupolicy.solver.result import SolveParams
from tests.fakes.http import QuietHandler, serving
from tests.fakes.kubeconfig import write_kubeconfig
from tests.plugin.controller.fakeapi import FakeApi, allocated, claim, example, pod, strands

THREE_G, FOUR_G = "mig-3g.gpupolicy.dev", "mig-4g.gpupolicy.dev"
FOUR_G_SLOT = "gpu-0-mig-4g40gb-5-0"  # the only 4g.40gb the H100 of examples/first-fit-strands offers
Stall = Callable[[str, Obj, bool], bool]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class View:
    """One replica's connection to the shared API. A write that ``stall_if`` picks runs ``meanwhile`` (the other
    replica) and then lands; with ``then_timeout`` the client has given up by then and sees a timeout."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.stall_if: Stall | None = None
        self.meanwhile: Callable[[], None] = lambda: None
        self.then_timeout = False
        self.writes: list[tuple[str, str, bool]] = []  # kind, name, status: what reached the server

    def list(self, kind: str) -> list[Obj]:
        return self.api.list(kind)

    def get(self, kind: str, namespace: str | None, name: str) -> Obj:
        return self.api.get(kind, namespace, name)

    def create(self, kind: str, obj: Obj) -> Obj:
        self.writes.append((kind, obj["metadata"]["name"], False))
        return self.api.create(kind, obj)

    def update(self, kind: str, obj: Obj, *, status: bool = False) -> Obj:
        self.writes.append((kind, obj["metadata"]["name"], status))
        if self.stall_if is not None and self.stall_if(kind, obj, status):
            self.stall_if = None
            self.meanwhile()
            landed = self.api.update(kind, obj, status=status)
            if self.then_timeout:
                raise Unreachable("TimeoutError: read timed out")
            return landed
        return self.api.update(kind, obj, status=status)


@dataclass
class Replica:
    name: str
    view: View
    clock: Clock
    elector: LeaderElector
    controller: Controller
    results: list[StepResult] = field(default_factory=list)

    def pass_(self) -> StepResult | None:
        """What ``Controller.run`` does each round: hold the Lease, then one pass (no batch window)."""
        if not self.controller.leading():
            return None
        result = self.controller.step(force=True)
        self.results.append(result)
        return result


def replica(api: FakeApi, name: str) -> Replica:
    policy = Path(example("first-fit-strands")[0])
    settings = Settings(
        policy=(policy.read_text(), str(policy)), params=SolveParams(time_limit_s=5, workers=1, explain_total_s=5)
    )
    view, clock = View(api), Clock()
    elector = LeaderElector(view, name, lease_duration_s=15, renew_deadline_s=10, clock=clock)
    ctl = Controller(view, Config(name, settings), elector, clock=clock)
    return Replica(name, view, clock, elector, ctl)


@pytest.fixture
def api() -> FakeApi:
    """examples/first-fit-strands: one H100 as a dynamic MIG pool with a single 4g.40gb slot."""
    return strands()


def add(api: FakeApi, *objs: Obj) -> None:
    for obj in objs:
        api.put("pods" if obj["kind"] == "Pod" else "resourceclaims", obj)


def held(claim_obj: Obj) -> list[tuple[str, str, str]]:
    alloc = (claim_obj.get("status") or {}).get("allocation") or {}
    results = (alloc.get("devices") or {}).get("results") or []
    return [(r["driver"], r["pool"], r["device"]) for r in results if not r.get("adminAccess")]


def gated(api: FakeApi, name: str) -> bool:
    return GATE in [g["name"] for g in api.get("pods", "default", name)["spec"].get("schedulingGates") or []]


def assert_never_shared(api: FakeApi) -> None:
    """No device in two claims' allocations; no device behind two ungated pods."""
    claims = {c["metadata"]["name"]: c for c in api.of("resourceclaims")}
    uses = Counter(d for c in claims.values() for d in held(c))
    assert [d for d, n in uses.items() if n > 1] == [], f"devices in two claims: {uses}"
    running: Counter[tuple[str, str, str]] = Counter()
    for p in api.of("pods"):
        if GATE in [g["name"] for g in p["spec"].get("schedulingGates") or []]:
            continue
        names = {e["resourceClaimName"] for e in p["spec"].get("resourceClaims") or []}
        running.update({d for n in names if n in claims for d in held(claims[n])})
    assert [d for d, n in running.items() if n > 1] == [], f"ungated pods share devices: {running}"


def advance(seconds: float, *replicas: Replica) -> None:
    for r in replicas:
        r.clock.now += seconds


@pytest.mark.parametrize("client_gave_up", [False, True], ids=["slow-answer", "timed-out"])
def test_a_stalled_leader_never_doubles_a_device(api: FakeApi, client_gave_up: bool) -> None:
    """Replica a writes p1's claims; its allocation of the 4g slot stalls past the Lease's expiry. Meanwhile b takes
    over, releases a's half-written unit and gives the 4g slot to p2. Then a's write lands anyway: a must write
    nothing more (not p1's gate) and b must clean up, so that no device is held twice."""
    add(api, claim("a1", THREE_G), claim("a2", FOUR_G), pod("p1", ["a1", "a2"]))
    a, b = replica(api, "a"), replica(api, "b")
    assert a.elector.try_acquire_or_renew()
    assert not b.elector.try_acquire_or_renew(), "b sees a's Lease"

    def b_takes_over() -> None:
        advance(20, a, b)  # a's write hangs for 20 s: longer than the Lease (15 s)
        add(api, claim("b1", FOUR_G), pod("p2", ["b1"]))
        result = b.pass_()
        assert result is not None and result.placed == ["pod:default/p2"], "b leads and places p2 on the 4g slot"
        assert result.released == ["pod:default/p1"], "b released a's half-written unit"

    def a2_allocation(kind: str, obj: Obj, status: bool) -> bool:
        return kind == "resourceclaims" and status and obj["metadata"]["name"] == "a2"

    a.view.stall_if, a.view.meanwhile, a.view.then_timeout = a2_allocation, b_takes_over, client_gave_up
    a.pass_()
    assert a.view.stall_if is None, "the stall happened"
    stale = a.view.writes[a.view.writes.index(("resourceclaims", "a2", True)) + 1 :]
    assert stale == [], f"a wrote after its Lease ran out: {stale}"
    assert gated(api, "p1")
    for _ in range(3):  # b's next passes find what a's late write left behind
        b.pass_()
    assert_never_shared(api)
    assert not gated(api, "p2") and held(api.get("resourceclaims", "default", "b1"))[0][2] == FOUR_G_SLOT
    assert gated(api, "p1") and held(api.get("resourceclaims", "default", "a2")) == []


def test_the_lease_is_checked_before_every_write(api: FakeApi) -> None:
    """a's Lease runs past its renew deadline while it writes one unit (no other replica yet): the next write,
    claim or gate, is not sent."""
    add(api, claim("a1", THREE_G), claim("a2", FOUR_G), pod("p1", ["a1", "a2"]))
    a = replica(api, "a")
    assert a.elector.try_acquire_or_renew()

    def a1_allocation(kind: str, obj: Obj, status: bool) -> bool:
        return kind == "resourceclaims" and status and obj["metadata"]["name"] == "a1"

    a.view.stall_if, a.view.meanwhile = a1_allocation, lambda: advance(11, a)  # past the 10 s renew deadline
    result = a.pass_()
    assert result is not None and a.view.stall_if is None
    stale = a.view.writes[a.view.writes.index(("resourceclaims", "a1", True)) + 1 :]
    assert stale == [], f"a wrote after its renew deadline: {stale}"
    assert "pod:default/p1" in result.skipped and not result.placed
    assert gated(api, "p1") and held(api.get("resourceclaims", "default", "a2")) == []


def test_a_late_write_seen_before_ungating_stops_the_gate(api: FakeApi) -> None:
    """Stale replica a had written p1's first claim when b took over; b releases that half-written unit and places
    p2 on the 4g slot. Before b removes p2's gate, a's late allocation of the same slot to p1's second claim lands.
    The check against a fresh list of claims catches it: p2 stays gated and b's allocation is released."""
    half = claim("a1", THREE_G)
    half["metadata"]["annotations"] = {ALLOCATED_BY: "a"}
    half["status"] = allocated("gpu-0-mig-3g40gb-9-4")
    add(api, half, claim("a2", FOUR_G), pod("p1", ["a1", "a2"]), claim("b1", FOUR_G), pod("p2", ["b1"]))
    b = replica(api, "b")
    assert b.elector.try_acquire_or_renew()

    def b1_allocation(kind: str, obj: Obj, status: bool) -> bool:
        return kind == "resourceclaims" and status and obj["metadata"]["name"] == "b1"

    def stale_write_lands() -> None:
        late = api.get("resourceclaims", "default", "a2")
        late["metadata"]["annotations"] = {ALLOCATED_BY: "a"}
        late["status"] = allocated(FOUR_G_SLOT)
        api.put("resourceclaims", late)

    b.view.stall_if, b.view.meanwhile = b1_allocation, stale_write_lands
    first = b.pass_()
    assert first is not None and b.view.stall_if is None, "b wrote p2's claim"
    assert first.released == ["pod:default/p1"] and "pod:default/p2" in first.skipped, first
    assert gated(api, "p2") and held(api.get("resourceclaims", "default", "b1")) == []
    assert_never_shared(api)
    for _ in range(3):
        b.pass_()
        assert_never_shared(api)
    assert sorted([gated(api, "p1"), gated(api, "p2")]) == [False, True], "the 4g slot went to one of them"


def test_a_complete_unit_whose_device_another_claim_holds_is_released_not_ungated(api: FakeApi) -> None:
    """A stale replica's allocation landed after the leader placed another pod on the same device: the gated
    unit looks complete, but its device is taken. It is released and solved again, never ungated."""
    late = claim("a2", FOUR_G)
    late["metadata"]["annotations"] = {ALLOCATED_BY: "a"}
    late["status"] = allocated(FOUR_G_SLOT)
    theirs = claim("b1", FOUR_G)
    theirs["metadata"]["annotations"] = {ALLOCATED_BY: "b"}
    theirs["status"] = allocated(FOUR_G_SLOT)
    add(api, late, pod("p1", ["a2"]), theirs, pod("p2", ["b1"], gated=False))
    b = replica(api, "b")
    assert b.elector.try_acquire_or_renew()
    result = b.pass_()
    assert result is not None and result.finished == []
    assert gated(api, "p1") and held(api.get("resourceclaims", "default", "a2")) == []
    assert_never_shared(api)
    again = b.pass_()
    assert again is not None and again.unplaced == ["pod:default/p1"], "solved again: the 4g slot is taken"


# -- the write timeout against the Lease: a real HTTP stand-in that never answers a write


@pytest.fixture
def stalling() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server that answers GETs with an empty object and never answers PUTs (until the test ends)."""
    seen: list[str] = []
    release = threading.Event()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            seen.append(f"GET {self.path}")
            data = b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            seen.append(f"PUT {self.path}")
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            release.wait(30)

    with serving(Handler) as url:
        try:
            yield url, seen
        finally:
            release.set()  # the stalled PUTs end before their server goes


def kubeconfig(tmp_path: Path, url: str) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", url, token="t0k3n")


def test_controller_writes_give_up_within_the_margin_the_lease_leaves(
    stalling: tuple[str, list[str]], tmp_path: Path
) -> None:
    """`controller run` makes its clients with `clients()`: a write to a server that never answers is given up
    well before the Lease could expire after the renew deadline (15 s - 10 s), and the server is told the same
    deadline (`?timeout=`), so it does not apply the write long after."""
    from gpupolicy.plugin.cli.controller_cmd import clients

    url, seen = stalling
    reads, writes = clients(kubeconfig(tmp_path, url), lease_duration_s=15)
    try:
        obj: Obj = {"metadata": {"name": "c", "namespace": "ns", "resourceVersion": "1"}}
        started = time.monotonic()
        with pytest.raises(Unreachable):
            writes.update("resourceclaims", obj, status=True)
        took = time.monotonic() - started
        assert took < 15 - 10, f"a stalled write held the controller for {took:.1f} s"
        assert reads.get("resourceclaims", "ns", "c") == {}
    finally:
        reads.close()
        writes.close()
    puts = [s for s in seen if s.startswith("PUT ")]
    assert len(puts) == 1 and "timeout=" in puts[0], seen


def result(device: str, pool: str = "h100-0", **extra: Any) -> Obj:
    return {"request": "gpu", "driver": "gpu.gpupolicy.dev", "pool": pool, "device": device, **extra}


def claimed(name: str, *results: Obj) -> Obj:
    obj = claim(name, FOUR_G)
    obj["status"] = {"allocation": {"devices": {"results": list(results)}}}
    return obj


@pytest.mark.parametrize(
    ("other", "before", "want"),
    [
        (claimed("x", result("d0")), True, "device gpu.gpupolicy.dev/h100-0/d0 is also allocated to claim default/x"),
        (claimed("x", result("d0", shareID="s1")), True, "device gpu.gpupolicy.dev/h100-0/d0 is also allocated"),
        (claimed("x", result("d0", adminAccess=True)), True, ""),
        (claimed("x", result("d1")), True, ""),
        (claimed("x", result("d1")), False, "claim default/x was allocated meanwhile in pool gpu.gpupolicy.dev/h100-0"),
        (claimed("x", result("d1", pool="h100-1")), False, ""),
    ],
    ids=["same-device", "shared-by-one-only", "admin-access", "old-allocation", "new-in-pool", "new-elsewhere"],
)
def test_clash_judges_a_unit_against_every_other_claim(other: Obj, before: bool, want: str) -> None:
    ours = claimed("ours", result("d0"))
    fresh = {("default", "ours"): ours, ("default", "x"): other}
    snapshot = {("default", "x"): other} if before else {("default", "x"): claim("x", FOUR_G)}
    why = clash([("default", "ours")], fresh, before=snapshot)
    assert why.startswith(want) and bool(why) == bool(want), why


def test_clash_allows_a_device_shared_by_share_ids_and_the_batchs_own_allocations() -> None:
    ours, theirs = claimed("ours", result("d0", shareID="a")), claimed("x", result("d0", shareID="b"))
    fresh = {("default", "ours"): ours, ("default", "x"): theirs}
    assert clash([("default", "ours")], fresh) == ""
    sibling = claimed("sib", result("d1"))
    fresh = {("default", "ours"): claimed("ours", result("d0")), ("default", "sib"): sibling}
    before = {("default", "sib"): claim("sib", FOUR_G)}
    assert clash([("default", "ours")], fresh, before=before).startswith("claim default/sib was allocated meanwhile")
    planned = {("default", "sib"): sibling["status"]["allocation"]}
    assert clash([("default", "ours")], fresh, before=before, planned=planned) == ""
    expected = {("default", "ours"): claimed("ours", result("d9"))["status"]["allocation"]}
    assert (
        clash([("default", "ours")], fresh, expected=expected)
        == "claim default/ours holds other devices than were written"
    )
    assert clash([("default", "gone")], fresh) == "claim default/gone is not allocated any more"
