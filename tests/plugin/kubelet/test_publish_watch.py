"""How the publisher keeps its slices: watches of its slices and of its Node poke it, the periodic resync (set to an
hour here, so that only a watch can explain a prompt sync) stays as the fallback. In memory (``FakeKube``) and over
HTTP (``NodeApi`` against the stand-in serving ``FakeKube``, with real watch requests)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.kubelet.api import Kube, NodeApi
from gpupolicy.plugin.kubelet.publish import Publisher
from gpupolicy.policy.builder import NodeRef
from tests.fakes.kube import FakeKube
from tests.fakes.kube_stub import StubApiServer
from tests.plugin.kubelet.helpers import DRIVER, NODE

HOUR = 3600.0
PROMPT_S = 2.0
"""What "within seconds" means here; a sync after a watch event takes ``settle_s`` (0.2 s) and a few requests."""


def build(ref: NodeRef, generation: int) -> list[dict[str, Any]]:
    """Two slices, owned by the Node when it exists (as the builder does)."""
    owner = [{"apiVersion": "v1", "kind": "Node", "name": ref.name, "uid": ref.uid, "controller": True}]
    return [
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceSlice",
            "metadata": {"name": f"{NODE}-{i}", **({"ownerReferences": owner} if ref.uid else {})},
            "spec": {
                "driver": DRIVER,
                "nodeName": NODE,
                "pool": {"name": NODE, "generation": generation, "resourceSliceCount": 2},
                "devices": [{"name": f"gpu-{i}"}],
            },
        }
        for i in range(2)
    ]


def eventually(check: Callable[[], bool], timeout_s: float = PROMPT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def complete(kube: FakeKube, generation: int = 0) -> bool:
    slices = [s for s in dict(kube.slices).values() if s["spec"]["nodeName"] == NODE]
    return len(slices) == 2 and all(s["spec"]["pool"]["generation"] > generation for s in slices)


def owners(kube: FakeKube) -> set[str]:
    return {o["uid"] for s in dict(kube.slices).values() for o in s["metadata"].get("ownerReferences") or []}


def quiet(publisher: Publisher, kube: FakeKube) -> None:
    """Wait until the start's syncs (one, and one for the watches' first lists) are over: no sync for 0.3 s."""
    assert publisher.published.wait(5)
    deadline = time.monotonic() + 3
    last = -1
    while publisher.syncs != last:
        assert time.monotonic() < deadline, f"syncs do not stop: {publisher.syncs}, {publisher.writes} writes"
        last = publisher.syncs
        time.sleep(0.3)


@pytest.fixture
def fake() -> FakeKube:
    return FakeKube()


@pytest.fixture
def over_http(tmp_path: Path) -> Iterator[tuple[StubApiServer, NodeApi]]:
    server = StubApiServer().start()
    api = NodeApi(server.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        yield server, api
    finally:
        server.stop()
        api.client.close()


@pytest.fixture(params=["in-memory", "http"])
def kubes(request: pytest.FixtureRequest) -> tuple[FakeKube, Kube]:
    """The objects to look at and change, and the door the publisher uses: the same ``FakeKube``, or HTTP to it."""
    if request.param == "in-memory":
        kube = request.getfixturevalue("fake")
        return kube, kube
    server, api = request.getfixturevalue("over_http")
    return server.kube, api


@pytest.fixture
def started(kubes: tuple[FakeKube, Kube]) -> Iterator[tuple[FakeKube, Publisher]]:
    kube, door = kubes
    publisher = Publisher(door, DRIVER, NODE, build, resync_s=HOUR)
    yield kube, publisher
    publisher.stop()


def test_slices_deleted_behind_its_back_are_republished_at_once_in_one_write(
    started: tuple[FakeKube, Publisher],
) -> None:
    """As kubelet does at its start: every slice of the node deleted, one by one."""
    kube, publisher = started
    kube.put_node(NODE)
    publisher.start()
    quiet(publisher, kube)
    assert complete(kube)
    writes, generation = publisher.writes, publisher.generation
    for name in sorted(kube.slices):
        kube.delete_slice(name)
    assert eventually(lambda: complete(kube, generation)), "not republished, with an hour to the next resync"
    time.sleep(0.3)  # more than settle_s: a second write would have come by now
    assert publisher.writes == writes + 1, "the deletions are one burst, one write"


def test_a_node_created_after_the_first_publish_owns_the_slices_at_once(started: tuple[FakeKube, Publisher]) -> None:
    kube, publisher = started
    publisher.start()
    quiet(publisher, kube)
    assert complete(kube) and owners(kube) == set()
    uid = kube.put_node(NODE)["metadata"]["uid"]
    assert eventually(lambda: owners(kube) == {uid}), "the slices have no owner, with an hour to the next resync"
    kube.delete_node(NODE)
    uid = kube.put_node(NODE)["metadata"]["uid"]
    assert eventually(lambda: owners(kube) == {uid}), "a re-created Node's new UID"


def test_own_writes_come_back_as_events_but_write_nothing_more(started: tuple[FakeKube, Publisher]) -> None:
    kube, publisher = started
    kube.put_node(NODE)
    publisher.start()
    quiet(publisher, kube)
    kube.delete_slice(f"{NODE}-1")
    assert eventually(lambda: complete(kube, 1))
    writes, changes = publisher.writes, len(kube.changes)
    syncs = publisher.syncs
    time.sleep(1.5)  # the events of the write (one per slice) came and went
    assert publisher.writes == writes and len(kube.changes) == changes, "a write caused another"
    assert publisher.syncs - syncs <= 1, "the events of one write are one sync"


def test_watchers_end_with_the_publisher(fake: FakeKube) -> None:
    publisher = Publisher(fake, DRIVER, NODE, build, resync_s=HOUR)
    publisher.start()
    assert publisher.published.wait(5)
    assert sorted(set(fake.calls) & {"watch_slices", "watch_node"}) == ["watch_node", "watch_slices"]
    publisher.stop()
    for watcher in publisher.watchers:
        watcher.join(timeout=2)
        assert not watcher.is_alive(), watcher.name


def test_without_watches_the_periodic_resync_still_republishes(fake: FakeKube) -> None:
    fake.watchable = False
    fake.put_node(NODE)
    publisher = Publisher(fake, DRIVER, NODE, build, resync_s=0.5)
    publisher.start()
    try:
        assert publisher.published.wait(5)
        generation = publisher.generation
        for name in sorted(fake.slices):
            fake.delete_slice(name)
        assert eventually(lambda: complete(fake, generation))
    finally:
        publisher.stop()


def test_a_watch_rbac_refuses_is_logged_once_and_the_resync_goes_on(
    over_http: tuple[StubApiServer, NodeApi], caplog: pytest.LogCaptureFixture
) -> None:
    """403 to both watches, as with the RBAC of an older chart: the lists work, the watches fail every try."""
    server, api = over_http
    server.refuse.update({"watch slices": 403, "watch nodes": 403})
    server.kube.put_node(NODE)
    publisher = Publisher(api, DRIVER, NODE, build, resync_s=0.5)
    with caplog.at_level(logging.WARNING, logger="gpupolicy.plugin.kube.client"):
        publisher.start()
        try:
            assert publisher.published.wait(5)
            generation = publisher.generation
            for name in sorted(server.kube.slices):
                server.kube.delete_slice(name)
            assert eventually(lambda: complete(server.kube, generation)), "the resync did not republish"
            time.sleep(1.5)  # the watches have been tried again (after 1 s)
        finally:
            publisher.stop()
    warned = sorted(r.getMessage().split(" (")[0] for r in caplog.records)
    assert warned == ["watch of nodes", "watch of resourceslices"], "one warning per watch, not per try"


def test_a_burst_of_pokes_is_one_sync(fake: FakeKube) -> None:
    fake.put_node(NODE)
    publisher = Publisher(fake, DRIVER, NODE, build, resync_s=HOUR)
    publisher.start()
    try:
        quiet(publisher, fake)
        syncs = publisher.syncs
        for _ in range(20):
            publisher.poke()
            time.sleep(0.01)
        assert eventually(lambda: publisher.syncs > syncs)
        time.sleep(0.5)
        assert publisher.syncs == syncs + 1
    finally:
        publisher.stop()
