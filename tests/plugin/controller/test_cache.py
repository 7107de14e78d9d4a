"""The controller's cache (watches instead of lists): a pass after one new pod lists nothing of the cluster, the
fingerprint kept per event equals the one computed from lists, and each claim costs the fewest writes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupolicy.plugin.controller import fingerprint as fp
from gpupolicy.plugin.controller.cache import Cache, start
from gpupolicy.plugin.controller.loop import Config, Controller
from gpupolicy.plugin.controller.placer import LoadCache, Settings, read
from gpupolicy.plugin.controller.preempt import Options
from gpupolicy.plugin.controller.snapshot import Snapshot, ref
from gpupolicy.plugin.kube import Obj
from gpupolicy.solver.compile_devices import DeviceTable, build_devices
from gpupolicy.solver.result import SolveParams
from tests.plugin.controller.fakeapi import FakeApi, allocated, claim, example, node, pod, strands

THREE_G, FOUR_G = "mig-3g.gpupolicy.dev", "mig-4g.gpupolicy.dev"
CLUSTER = ("pods", "resourceslices", "deviceclasses", "nodes", "poddisruptionbudgets")


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def controller(api: FakeApi, stop: threading.Event, disrupt: Options | None = None) -> Controller:
    policy = Path(example("first-fit-strands")[0])
    settings = Settings(policy=(policy.read_text(), str(policy)), params=SolveParams(time_limit_s=5, workers=1))
    ctl = Controller(api, Config("cached", settings, disrupt=disrupt or Options()))
    assert ctl.inform(stop), "every kind listed once"
    return ctl


def add(api: FakeApi, *objs: Obj) -> None:
    for obj in objs:
        api.put("pods" if obj["kind"] == "Pod" else "resourceclaims", obj)


def lists(api: FakeApi, since: int) -> list[str]:
    return [kind for verb, kind in api.calls[since:] if verb == "list"]


@pytest.mark.parametrize("disrupt", [Options(), Options(preemption=True)], ids=["plain", "preemption"])
def test_a_pass_after_one_new_pod_lists_nothing_but_the_claims_it_writes(
    stop: threading.Event, disrupt: Options
) -> None:
    """The cluster is listed once, by the informers; then a new pod costs only the two fresh lists of claims the
    write path reads on purpose (before writing, before ungating), whatever the cluster's size."""
    api = strands(("h100-0", "h100-1", "h100-2"))
    ctl = controller(api, stop, disrupt)
    assert ctl.informed is not None
    kinds = ["pods", "resourceclaims", "resourceslices", "deviceclasses", "nodes"]
    kinds += ["poddisruptionbudgets"] if disrupt.on else []
    assert sorted(ctl.informed.lists) == sorted(kinds) and set(ctl.informed.lists.values()) == {1}
    add(api, claim("a", THREE_G), pod("p3", ["a"]))
    assert ctl.step(force=True).placed == ["pod:default/p3"]

    mark = len(api.calls)
    add(api, claim("b", FOUR_G), pod("p4", ["b"]))
    assert ctl.step(force=True).placed == ["pod:default/p4"]
    assert lists(api, mark) == ["resourceclaims", "resourceclaims"], "no list of pods, slices, classes, nodes"

    mark = len(api.calls)
    quiet = ctl.step(force=True)
    assert not quiet.solved and api.calls[mark:] == [], "a pass with nothing new asks the API server nothing"
    assert set(ctl.informed.lists.values()) == {1}, "nothing listed again"
    cached = ctl.informed.snapshot()
    assert cached.claims == {ref(c): c for c in api.list("resourceclaims")}, "current, and never changed in place"
    assert cached.slices == api.list("resourceslices") and cached.pods == []


def test_without_a_cache_every_pass_lists_the_cluster(stop: threading.Event) -> None:
    """The other side of the test above (a client that cannot inform, as before the cache)."""
    api = strands()
    policy = Path(example("first-fit-strands")[0])
    settings = Settings(policy=(policy.read_text(), str(policy)), params=SolveParams(time_limit_s=5, workers=1))
    ctl = Controller(api, Config("listing", settings))
    add(api, claim("b", FOUR_G), pod("p4", ["b"]))
    mark = len(api.calls)
    assert ctl.step(force=True).placed == ["pod:default/p4"]
    assert {"pods", "resourceslices", "deviceclasses", "nodes"} <= set(lists(api, mark))


def scheduler_writes(claim_obj: Obj, pod_obj: Obj) -> int:
    """What kube-scheduler's PreBind still writes to an allocated claim: nothing when it is already reserved for
    the pod (dynamicresources.go: bindClaim runs only for a claim not reserved for the pod), else a status update
    adding the pod to ``reservedFor``."""
    uids = {r.get("uid") for r in (claim_obj.get("status") or {}).get("reservedFor") or []}
    return 0 if pod_obj["metadata"]["uid"] in uids else 1


def test_a_claim_costs_two_writes_and_the_scheduler_writes_it_no_more(stop: threading.Event) -> None:
    """Per one-claim pod: the finalizer and annotation (metadata), the allocation with the reservation for the pod
    (status), the gate (pod): 3 writes, where the scheduler used to add its own reservation (a 4th)."""
    api = strands(("h100-0", "h100-1"))
    ctl = controller(api, stop)
    add(api, claim("a", THREE_G), pod("p3", ["a"]), claim("b", FOUR_G), pod("p4", ["b"]))
    mark = len(api.calls)
    assert sorted(ctl.step(force=True).placed) == ["pod:default/p3", "pod:default/p4"]
    writes = [c for c in api.calls[mark:] if c[0] not in ("list", "get")]
    assert sorted(writes) == sorted([("update", "resourceclaims"), ("update-status", "resourceclaims"),
                                     ("update", "pods")] * 2)  # fmt: skip
    for claim_name, pod_name in (("a", "p3"), ("b", "p4")):
        written = api.get("resourceclaims", "default", claim_name)
        placed = api.get("pods", "default", pod_name)
        uid = placed["metadata"]["uid"]
        assert written["status"]["reservedFor"] == [{"resource": "pods", "name": pod_name, "uid": uid}]
        assert scheduler_writes(written, placed) == 0


def test_a_claim_two_pods_of_a_group_share_is_reserved_for_both(stop: threading.Event) -> None:
    api = strands()
    ctl = controller(api, stop)
    add(api, claim("shared", THREE_G), pod("w1", ["shared"], group="g"), pod("w2", ["shared"], group="g"))
    assert ctl.step(force=True).placed == ["group:default/g"]
    reserved = api.get("resourceclaims", "default", "shared")["status"]["reservedFor"]
    assert sorted(r["name"] for r in reserved) == ["w1", "w2"]


def test_the_fingerprint_kept_per_event_is_the_one_computed_from_lists(stop: threading.Event) -> None:
    """Allocations made and released, a slice changed, a bound pod, a budget and its status: after each change the
    cache's running sum gives the fingerprint a listed snapshot gives."""
    api = strands(("h100-0", "h100-1"))
    cache = Cache(("pods", "resourceclaims", "resourceslices", "deviceclasses", "nodes", "poddisruptionbudgets"))
    assert start(api, cache, stop)

    def same() -> None:
        for disruption in (False, True):
            listed = Snapshot.read(api, disruption=disruption)
            assert fp.of(cache.snapshot(disruption=disruption)) == fp.of(listed)
        assert [ref(c) for c in cache.snapshot().claims.values()] == [ref(c) for c in api.list("resourceclaims")]

    same()
    api.put("resourceclaims", {**claim("x", THREE_G), "status": allocated("gpu-0-mig-3g40gb-0-0")})
    same()
    theirs = api.get("resourceclaims", "default", "x")
    api.put("resourceclaims", {**theirs, "status": {}})
    same()
    bound = pod("running", ["x"], gated=False)
    bound["spec"]["nodeName"] = "h100-0"
    api.put("pods", bound)
    same()
    budget: Obj = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "spec": {}}
    budget |= {"metadata": {"name": "b", "namespace": "default"}, "status": {"disruptionsAllowed": 1}}
    api.put("poddisruptionbudgets", budget)
    same()
    api.put("poddisruptionbudgets", {**budget, "status": {"disruptionsAllowed": 0}})
    same()
    one = api.of("resourceslices")[0]
    api.put("resourceslices", one)  # a new resourceVersion
    same()
    api.delete("pods", "default", "running")
    api.delete("resourceslices", None, one["metadata"]["name"])
    same()


def test_an_older_state_never_replaces_a_newer_one() -> None:
    """What a write answered is kept until the watch brings something newer; a late event of an older version is
    dropped; a new list drops what it no longer holds."""
    cache = Cache(("pods",))

    def p(version: str, gated: bool = True) -> Obj:
        obj = pod("p", [], gated=gated)
        obj["metadata"]["resourceVersion"] = version
        return obj

    cache.replace("pods", [p("5")])
    assert [x["metadata"]["name"] for x in cache.snapshot().pods] == ["p"]
    cache.assume("pods", p("7", gated=False))  # we removed the gate
    cache.event("pods", "MODIFIED", p("6"))  # the watch is behind
    assert cache.snapshot().pods == [], "still ungated: version 7 is newer than 6"
    cache.event("pods", "MODIFIED", p("8"))
    assert len(cache.snapshot().pods) == 1
    cache.replace("pods", [])
    assert cache.snapshot().pods == [] and cache.count("pods") == 0


def test_a_full_batch_closes_at_once_and_the_rest_follows_in_the_next_pass(stop: threading.Event) -> None:
    """``max_batch``: under a burst a batch does not wait for its window once full (the oldest units first); the
    units it left out are solved in the very next pass, without a new window."""
    api = strands(("h100-0", "h100-1"))
    policy = Path(example("first-fit-strands")[0])
    settings = Settings(policy=(policy.read_text(), str(policy)), params=SolveParams(time_limit_s=5, workers=1))
    now = [100.0]
    ctl = Controller(api, Config("burst", settings, batch_window_s=60, max_batch=2), clock=lambda: now[0])
    assert ctl.inform(stop)
    add(api, claim("a", THREE_G), pod("p1", ["a"]))
    assert ctl.step().deferred, "one unit: the window runs"
    now[0] += 1
    add(api, claim("b", THREE_G), pod("p2", ["b"]), claim("c", FOUR_G), pod("p3", ["c"]))
    first = ctl.step()
    assert first.solved and first.more and len(first.placed) == 2 and "pod:default/p1" in first.placed
    second = ctl.step()
    assert second.solved and not second.more and len(second.placed) == 1, "the rest, with no new window"
    assert {k for r in (first, second) for k in r.placed} == {"pod:default/p1", "pod:default/p2", "pod:default/p3"}


def test_a_pass_whose_slices_did_not_change_does_not_build_the_devices_again() -> None:
    """The device table (every device of every slice) is built again only when a slice or a node changed: the
    loader hands over the same slice objects while their resourceVersions stay."""
    api = strands(("h100-0", "h100-1"))
    loads = LoadCache()

    def table() -> DeviceTable:
        inputs = read(Snapshot.read(api), [], {}, Settings(), loads)
        return build_devices(inputs.slices, inputs.nodes)

    first = table()
    assert table() is first, "nothing changed: the same table"
    api.put("resourceslices", api.of("resourceslices")[0])  # a new resourceVersion, the same devices
    again = table()
    assert again is not first and again.devices == first.devices
    api.put("nodes", {**node("h100-1"), "metadata": {"name": "h100-1", "labels": {"zone": "b"}}})
    assert table() is not again, "a node's labels changed"


def test_an_object_that_does_not_read_does_not_stop_the_cache() -> None:
    """A claim whose allocation lacks fields is kept (its unit fails in a pass, located); the cache goes on."""
    cache = Cache(("resourceclaims",))
    odd = {**claim("odd", THREE_G), "status": {"allocation": {"devices": {"results": [{"request": "gpu"}]}}}}
    odd["metadata"]["resourceVersion"] = "3"
    cache.replace("resourceclaims", [odd])
    cache.event(
        "resourceclaims", "ADDED", {**claim("next", THREE_G), "metadata": {"name": "next", "namespace": "default"}}
    )
    assert sorted(n for _, n in cache.snapshot().claims) == ["next", "odd"]
