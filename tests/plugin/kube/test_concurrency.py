"""However many GETs are asked for at once, one client has at most ``MAX_CONCURRENT`` requests in flight and as
many connections open (threads and event loop alike), and every one is answered."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.kube import ApiError, NotFound
from gpupolicy.plugin.kube.client import MAX_CONCURRENT, Client
from gpupolicy.plugin.kubelet.api import NodeApi
from tests.fakes.counting_api import CountingApi

CLAIMS = 2000


def _claim(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": f"c{i}", "namespace": "default", "uid": f"00000000-0000-4000-8000-{i:012d}"},
    }


@pytest.fixture
def api() -> Iterator[CountingApi]:
    server = CountingApi([_claim(i) for i in range(CLAIMS)], delay_s=0.02)
    yield server
    server.close()


def test_the_bound_is_64() -> None:
    assert MAX_CONCURRENT == 64


def test_thousands_of_gets_on_the_event_loop_share_64_connections(tmp_path: Path, api: CountingApi) -> None:
    node = NodeApi(api.write_kubeconfig(tmp_path / "kubeconfig"))

    async def run() -> list[Any]:
        try:
            names = [f"c{i}" for i in range(CLAIMS)] + ["missing"]
            return await asyncio.gather(
                *(node.get_claim_async("default", name) for name in names), return_exceptions=True
            )
        finally:
            await node.aclose()

    answers = asyncio.run(run())
    node.client.close()
    assert [a["metadata"]["name"] for a in answers[:-1]] == [f"c{i}" for i in range(CLAIMS)]
    assert isinstance(answers[-1], NotFound), "errors stay per request"
    assert api.requests == CLAIMS + 1
    assert api.most_in_flight <= MAX_CONCURRENT and api.most_open <= MAX_CONCURRENT
    assert api.most_in_flight > MAX_CONCURRENT // 2, "requests did run side by side"


def test_many_threads_share_64_requests_in_flight(tmp_path: Path, api: CountingApi) -> None:
    node = NodeApi(api.write_kubeconfig(tmp_path / "kubeconfig"))
    threads = 200
    start = threading.Barrier(threads)
    answers: list[Any] = [None] * threads

    def get(i: int) -> None:
        start.wait()
        try:
            answers[i] = node.get_claim("default", f"c{i}")["metadata"]["name"]
        except ApiError as exc:
            answers[i] = exc

    workers = [threading.Thread(target=get, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    node.client.close()
    assert answers == [f"c{i}" for i in range(threads)]
    assert api.most_in_flight <= MAX_CONCURRENT and api.most_open <= MAX_CONCURRENT
    assert api.most_in_flight > MAX_CONCURRENT // 2, "requests did run side by side"


def test_the_bound_is_per_client(tmp_path: Path, api: CountingApi) -> None:
    client = Client(api.write_kubeconfig(tmp_path / "kubeconfig"), max_concurrent=3)

    async def run() -> None:
        try:
            await asyncio.gather(*(client.get_async("resourceclaims", "default", f"c{i}") for i in range(50)))
        finally:
            await client.aclose()

    asyncio.run(run())
    client.close()
    assert api.most_in_flight == 3 and api.most_open == 3
