"""The real API client's claim GET against the HTTP stand-in: found, missing, unreachable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupolicy.plugin.kube import ApiError
from gpupolicy.plugin.kubelet.api import NodeApi
from tests.fakes.kube_stub import StubApiServer
from tests.plugin.kubelet.helpers import claim_obj


@pytest.fixture
def api() -> Iterator[StubApiServer]:
    server = StubApiServer().start()
    yield server
    server.stop()


def test_get_claim_returns_the_object_as_stored(tmp_path: Path, api: StubApiServer) -> None:
    stored = api.kube.put_claim(claim_obj("c1", [("gpu", "gpu-0")]))
    kube = NodeApi(api.write_kubeconfig(tmp_path / "kc"))
    for _ in range(3):  # the cached auth headers are reused
        assert kube.get_claim("default", "c1") == stored


def test_missing_claim_and_unreachable_server_are_distinct_errors(tmp_path: Path, api: StubApiServer) -> None:
    kube = NodeApi(api.write_kubeconfig(tmp_path / "kc"), timeout_s=2)
    with pytest.raises(ApiError) as missing:
        kube.get_claim("default", "nope")
    assert missing.value.code == "not_found"
    api.stop()  # (a kept-alive connection would still be served: ask with a fresh client)
    with pytest.raises(ApiError) as down:
        NodeApi(tmp_path / "kc", timeout_s=2).get_claim("default", "nope")
    assert down.value.code == "unreachable"
