"""One NodePrepareResources with a thousand claims, through the gRPC server and the real API client: never more
than ``MAX_CONCURRENT`` requests in flight or connections open, every claim answered, errors per claim."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.kube.client import MAX_CONCURRENT
from gpupolicy.plugin.kubelet.api import NodeApi
from gpupolicy.plugin.kubelet.health import HealthState
from gpupolicy.plugin.kubelet.server import PluginServer
from tests.fakes.counting_api import CountingApi
from tests.plugin.kubelet.helpers import DRIVER, NODE, Node, claim_obj, make_node
from tests.plugin.kubelet.kubelet import FakeKubelet

CLAIMS = 1000


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return make_node(tmp_path)


@pytest.fixture
def claims() -> list[dict[str, Any]]:
    # Devices of another driver: this node prepares them with nothing to set up (a CDI spec without devices), so
    # a thousand of them fit on one node.
    return [claim_obj(f"c{i}", [("gpu", "gpu-0")], driver="other.example.com") for i in range(CLAIMS)]


@pytest.fixture
def api(claims: list[dict[str, Any]]) -> Iterator[CountingApi]:
    server = CountingApi(claims, delay_s=0.01)
    yield server
    server.close()


@pytest.fixture
def kubelet(tmp_path: Path, node: Node, api: CountingApi) -> Iterator[FakeKubelet]:
    node.preparer.kube = NodeApi(api.write_kubeconfig(tmp_path / "kubeconfig"))
    server = PluginServer(
        driver=DRIVER,
        plugin_dir=tmp_path / "plugins",
        registry_dir=tmp_path / "registry",
        preparer=node.preparer,
        health=HealthState(DRIVER, NODE),
    )
    server.start()
    client = FakeKubelet(tmp_path / "registry", DRIVER)
    yield client
    client.close()
    server.stop()
    node.preparer.kube.client.close()  # type: ignore[attr-defined]


def test_a_thousand_claims_in_one_call_use_at_most_64_connections(
    node: Node, api: CountingApi, kubelet: FakeKubelet, claims: list[dict[str, Any]]
) -> None:
    refs = [("default", c["metadata"]["uid"], c["metadata"]["name"]) for c in claims]
    missing = [("default", str(uuid.uuid4()), f"missing-{i}") for i in range(10)]
    invalid = [("default", f"../{i}", f"invalid-{i}") for i in range(5)]
    response = kubelet.prepare(refs + missing + invalid, timeout_s=60)
    answered = response.claims
    assert len(answered) == CLAIMS + len(missing) + len(invalid)
    assert [uid for _, uid, _ in refs if answered[uid].error] == []
    assert all("not_found" in answered[uid].error for _, uid, _ in missing)
    assert all(answered[uid].error.startswith("invalid claim reference") for _, uid, _ in invalid)
    assert api.requests == CLAIMS + len(missing)
    assert api.most_in_flight <= MAX_CONCURRENT and api.most_open <= MAX_CONCURRENT
    assert len(node.preparer.records) == CLAIMS
