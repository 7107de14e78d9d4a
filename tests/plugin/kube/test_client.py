"""The one client against a scripted HTTP server: each error class, the server's Status on it, and answers with
``Retry-After`` retried as client-go does (429, or 5xx that names it), on the sync and the async path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.kube import (
    ApiError,
    BudgetExceeded,
    Client,
    Conflict,
    NotFound,
    Retry,
    TooManyRequests,
    Unreachable,
)
from gpupolicy.plugin.kube.errors import error
from tests.fakes.http import QuietHandler, serving
from tests.fakes.kubeconfig import write_kubeconfig

CLAIM = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": {"name": "c", "namespace": "ns"}}


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@dataclass
class Script:
    """Answers given in order (the last one repeats); what was asked is recorded."""

    answers: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    asked: list[tuple[str, str, Any]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[tuple[Script, str]]:
    script = Script()

    class Handler(QuietHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            script.asked.append((self.command, self.path, body))
            code, headers, payload = script.answers[min(len(script.asked), len(script.answers)) - 1]
            data = json.dumps(payload).encode()
            self.send_response(code)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

    with serving(Handler) as url:
        yield script, url


def kubeconfig(tmp_path: Path, url: str) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", url, token="t0k3n")


def client(tmp_path: Path, url: str, slept: list[float], retry: Retry | None = None) -> Client:
    return Client(kubeconfig(tmp_path, url), timeout_s=5, retry=retry or Retry(), sleep=slept.append)


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (404, "NotFound", NotFound),
        (409, "Conflict", Conflict),
        (409, "AlreadyExists", Conflict),
        (403, "Forbidden", ApiError),
    ],
)
def test_each_status_is_its_own_class_carrying_the_servers_status(
    server: tuple[Script, str], tmp_path: Path, code: int, reason: str, cls: type[ApiError]
) -> None:
    script, url = server
    script.answers = [(code, {}, status(code, reason, f'resourceclaims "c" {reason.lower()}'))]
    with pytest.raises(ApiError) as raised:
        client(tmp_path, url, []).get("resourceclaims", "ns", "c")
    assert type(raised.value) is cls
    assert raised.value.http_status == code and raised.value.reason == reason
    assert raised.value.status is not None and raised.value.status["code"] == code
    assert str(raised.value).startswith(f"{cls.code}: {code} ") and reason.lower() in str(raised.value)


def test_a_body_that_is_no_status_still_gives_a_located_message(server: tuple[Script, str], tmp_path: Path) -> None:
    script, url = server
    script.answers = [(500, {}, "etcdserver: request timed out")]
    with pytest.raises(ApiError) as raised:
        client(tmp_path, url, []).list("pods")
    assert type(raised.value) is ApiError and raised.value.code == "api_error"
    assert raised.value.status is None and "etcdserver: request timed out" in str(raised.value)
    assert len(script.asked) == 1  # a 5xx without Retry-After is not retried


def test_no_server_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(Unreachable) as raised:
        client(tmp_path, "http://127.0.0.1:1", []).get("nodes", None, "n")
    assert raised.value.code == "unreachable" and raised.value.http_status == 0


def test_429_is_retried_after_retry_after(server: tuple[Script, str], tmp_path: Path) -> None:
    script, url = server
    busy = status(429, "TooManyRequests", "too many requests, please try again later")
    script.answers = [(429, {"Retry-After": "2"}, busy), (429, {"Retry-After": "1"}, busy), (201, {}, CLAIM)]
    slept: list[float] = []
    created = client(tmp_path, url, slept).create("resourceclaims", CLAIM)
    assert created == CLAIM and slept == [2.0, 1.0]
    assert [(m, p) for m, p, _ in script.asked] == [
        ("POST", "/apis/resource.k8s.io/v1/namespaces/ns/resourceclaims")
    ] * 3
    assert all(body == CLAIM for _, _, body in script.asked)  # the body is sent again each time


def test_429_gives_up_after_max_retries_with_the_servers_wait(server: tuple[Script, str], tmp_path: Path) -> None:
    script, url = server
    script.answers = [(429, {"Retry-After": "30"}, status(429, "TooManyRequests", "slow down"))]
    slept: list[float] = []
    with pytest.raises(TooManyRequests) as raised:
        client(tmp_path, url, slept, Retry(max_retries=3, max_wait_s=5)).get("resourceclaims", "ns", "c")
    assert raised.value.retry_after == 30 and raised.value.code == "too_many_requests"
    assert slept == [5.0, 5.0, 5.0] and len(script.asked) == 4  # each wait capped at max_wait_s


def test_429_without_retry_after_is_not_retried(server: tuple[Script, str], tmp_path: Path) -> None:
    script, url = server
    script.answers = [(429, {}, status(429, "TooManyRequests", "slow down")), (200, {}, CLAIM)]
    slept: list[float] = []
    with pytest.raises(TooManyRequests) as raised:
        client(tmp_path, url, slept).get("resourceclaims", "ns", "c")
    assert raised.value.retry_after is None and slept == [] and len(script.asked) == 1


def test_5xx_with_retry_after_is_retried(server: tuple[Script, str], tmp_path: Path) -> None:
    script, url = server
    script.answers = [(503, {"Retry-After": "1"}, status(503, "ServiceUnavailable", "starting")), (200, {}, CLAIM)]
    slept: list[float] = []
    assert client(tmp_path, url, slept).get("resourceclaims", "ns", "c") == CLAIM
    assert slept == [1.0]


def test_async_get_retries_429_and_raises_the_same_classes(server: tuple[Script, str], tmp_path: Path) -> None:
    script, url = server
    api = client(tmp_path, url, [])

    async def get() -> dict[str, Any]:
        try:
            return await api.get_async("resourceclaims", "ns", "c")
        finally:
            await api.aclose()

    script.answers = [(429, {"Retry-After": "0"}, status(429, "TooManyRequests", "busy")), (200, {}, CLAIM)]
    assert asyncio.run(get()) == CLAIM
    assert len(script.asked) == 2
    script.asked.clear()
    script.answers = [(404, {}, status(404, "NotFound", 'resourceclaims "c" not found'))]
    with pytest.raises(NotFound) as raised:
        asyncio.run(get())
    assert raised.value.status is not None and raised.value.reason == "NotFound"


def test_list_names_each_item_and_escapes_the_selector(server: tuple[Script, str], tmp_path: Path) -> None:
    script, url = server
    script.answers = [(200, {}, {"kind": "ResourceSliceList", "items": [{"metadata": {"name": "s"}}]})]
    items = client(tmp_path, url, []).list("resourceslices", field_selector="spec.nodeName=n,spec.driver=d")
    assert items == [{"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": "s"}}]
    assert (
        script.asked[0][1]
        == "/apis/resource.k8s.io/v1/resourceslices?fieldSelector=spec.nodeName%3Dn%2Cspec.driver%3Dd"
    )


def test_fakes_raise_the_same_classes() -> None:
    assert type(error("not_found", "x")) is NotFound and type(error("conflict", "x")) is Conflict
    assert type(error("unreachable", "x")) is Unreachable and type(error("whatever", "x")) is ApiError
    assert str(error("conflict", "the object has been modified")) == "conflict: the object has been modified"


def test_server_timeout_tells_the_server_how_long_the_client_waits(server: tuple[Script, str], tmp_path: Path) -> None:
    script, url = server
    script.answers = [(200, {}, {"kind": "ResourceSliceList", "items": []}), (200, {}, CLAIM)]
    api = Client(kubeconfig(tmp_path, url), timeout_s=2.5, server_timeout=True)
    api.list("resourceslices", field_selector="spec.nodeName=n")
    api.update("resourceclaims", CLAIM, status=True)
    assert [path for _, path, _ in script.asked] == [
        "/apis/resource.k8s.io/v1/resourceslices?fieldSelector=spec.nodeName%3Dn&timeout=2.5s",
        "/apis/resource.k8s.io/v1/namespaces/ns/resourceclaims/c/status?timeout=2.5s",
    ]
    plain = client(tmp_path, url, [])
    plain.get("resourceclaims", "ns", "c")
    assert script.asked[-1][1] == "/apis/resource.k8s.io/v1/namespaces/ns/resourceclaims/c", "off by default"


def test_evict_posts_an_eviction_dry_run_first_and_a_budget_refusal_is_too_many_requests(
    server: tuple[Script, str], tmp_path: Path
) -> None:
    script, url = server
    refused = status(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.")
    cause = {
        "type": "DisruptionBudget",
        "message": "The disruption budget keep needs 1 healthy pods and has 1 currently",
    }
    refused["details"] = {"causes": [cause]}
    script.answers = [(201, {}, {"kind": "Status", "status": "Success"}), (429, {}, refused)]
    api = Client(kubeconfig(tmp_path, url), timeout_s=2.5, server_timeout=True)
    api.evict("batch", "b-0", uid="u1", dry_run=True)
    with pytest.raises(BudgetExceeded) as raised:
        api.evict("batch", "b-0", uid="u1")
    assert isinstance(raised.value, TooManyRequests) and raised.value.code == "disruption_budget"
    assert "budget keep needs 1 healthy pods" in str(raised.value) and len(script.asked) == 2, "not retried"
    (method, dry, body), (_, real, _) = script.asked
    assert method == "POST" and dry == "/api/v1/namespaces/batch/pods/b-0/eviction?dryRun=All&timeout=2.5s"
    assert real == "/api/v1/namespaces/batch/pods/b-0/eviction?timeout=2.5s"
    assert body == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "b-0", "namespace": "batch"},
        "deleteOptions": {"preconditions": {"uid": "u1"}},
    }
