"""The claim GET on the event loop (``NodeApi.get_claim_async``): same answers as the threaded client,
kept-alive connections, bodies as HTTP/1.1 servers send them, time-outs and TLS."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.kube import ApiError
from gpupolicy.plugin.kubelet.api import NodeApi
from tests.fakes.kube_stub import StubApiServer
from tests.fakes.kubeconfig import write_kubeconfig
from tests.plugin.kubelet.helpers import claim_obj

CLAIM = {"kind": "ResourceClaim", "metadata": {"name": "c1", "namespace": "default", "uid": "u1"}}
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def api() -> Iterator[StubApiServer]:
    server = StubApiServer().start()
    yield server
    server.stop()


def _kubeconfig(path: Path, server: str, ca: Path | None = None) -> Path:
    return write_kubeconfig(path, server, token="secret-token", ca=ca)


def _response(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json", *extra]
    if not any(h.lower().startswith(("transfer-encoding", "connection: close")) for h in extra):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Scripted:
    """A raw HTTP/1.1 server on 127.0.0.1: ``respond(request_head, writer)`` answers each request."""

    def __init__(self, respond: Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]) -> None:
        self.respond = respond
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                if not await self.respond(head, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _serve(scripted: Scripted, tls: Any = None) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0, ssl=tls)
    return server, server.sockets[0].getsockname()[1]


async def _stop(server: asyncio.Server) -> None:
    server.close()
    await server.wait_closed()
    await asyncio.sleep(0.05)  # the connection handlers see the client's close


def test_async_get_answers_as_the_threaded_client(tmp_path: Path, api: StubApiServer) -> None:
    stored = api.kube.put_claim(claim_obj("c1", [("gpu", "gpu-0")]))
    kube = NodeApi(api.write_kubeconfig(tmp_path / "kc"), timeout_s=2)

    async def run() -> None:
        for _ in range(3):
            assert await kube.get_claim_async("default", "c1") == stored == kube.get_claim("default", "c1")
        with pytest.raises(ApiError) as missing:
            await kube.get_claim_async("default", "nope")
        assert missing.value.code == "not_found"
        await kube.aclose()

    asyncio.run(run())


def test_unreachable_server(tmp_path: Path) -> None:
    kube = NodeApi(_kubeconfig(tmp_path / "kc", "http://127.0.0.1:1"), timeout_s=2)
    with pytest.raises(ApiError) as down:
        asyncio.run(kube.get_claim_async("default", "c1"))
    assert down.value.code == "unreachable"


def test_requests_carry_auth_and_share_kept_alive_connections(tmp_path: Path) -> None:
    async def respond(head: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)  # all eight are in flight at once
        writer.write(_response(json.dumps(CLAIM).encode()))
        return True

    scripted = Scripted(respond)

    async def run() -> None:
        server, port = await _serve(scripted)
        kube = NodeApi(_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}"), timeout_s=2)
        for _ in range(3):
            results = await asyncio.gather(*(kube.get_claim_async("default", "c1") for _ in range(8)))
            assert results == [CLAIM] * 8
        await kube.aclose()
        await _stop(server)

    asyncio.run(run())
    assert scripted.connections == 8 and len(scripted.requests) == 24
    first = scripted.requests[0].decode()
    assert first.startswith("GET /apis/resource.k8s.io/v1/namespaces/default/resourceclaims/c1 HTTP/1.1\r\n")
    assert "authorization: bearer secret-token\r\n" in first.lower()


def test_a_connection_the_server_closed_is_replaced(tmp_path: Path) -> None:
    async def respond(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(_response(json.dumps(CLAIM).encode()))  # then closes without saying so
        await writer.drain()
        return False

    scripted = Scripted(respond)

    async def run() -> None:
        server, port = await _serve(scripted)
        kube = NodeApi(_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}"), timeout_s=2)
        for _ in range(3):
            assert await kube.get_claim_async("default", "c1") == CLAIM
            await asyncio.sleep(0.05)
        await kube.aclose()
        await _stop(server)

    asyncio.run(run())
    assert scripted.connections == 3


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_chunked_and_read_to_close_bodies(tmp_path: Path, framing: str) -> None:
    body = json.dumps(CLAIM).encode()

    async def respond(head: bytes, writer: asyncio.StreamWriter) -> bool:
        if framing == "chunked":
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:]))
            writer.write(_response(chunks + b"0\r\n\r\n", "Transfer-Encoding: chunked"))
            return True
        writer.write(_response(body, "Connection: close"))
        await writer.drain()
        return False

    scripted = Scripted(respond)

    async def run() -> None:
        server, port = await _serve(scripted)
        kube = NodeApi(_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}"), timeout_s=2)
        assert await kube.get_claim_async("default", "c1") == CLAIM
        assert await kube.get_claim_async("default", "c1") == CLAIM
        await kube.aclose()
        await _stop(server)

    asyncio.run(run())
    assert scripted.connections == (1 if framing == "chunked" else 2)


def test_a_server_that_does_not_answer_times_out(tmp_path: Path) -> None:
    async def respond(head: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    async def run() -> None:
        server, port = await _serve(Scripted(respond))
        kube = NodeApi(_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}"), timeout_s=0.2)
        with pytest.raises(ApiError) as slow:
            await kube.get_claim_async("default", "c1")
        assert slow.value.code == "unreachable" and "no response within" in str(slow.value)
        await _stop(server)

    asyncio.run(run())


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_verifies_the_server_against_the_configured_ca(tmp_path: Path) -> None:
    import ssl

    cert, key = _certificate(tmp_path, "server")
    other, _ = _certificate(tmp_path, "other")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    async def respond(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(_response(json.dumps(CLAIM).encode()))
        return True

    async def run() -> None:
        server, port = await _serve(Scripted(respond), tls)
        url = f"https://127.0.0.1:{port}"
        trusted = NodeApi(_kubeconfig(tmp_path / "kc", url, ca=cert), timeout_s=2)
        assert await trusted.get_claim_async("default", "c1") == CLAIM
        await trusted.aclose()
        untrusted = NodeApi(_kubeconfig(tmp_path / "kc-other", url, ca=other), timeout_s=2)
        with pytest.raises(ApiError) as refused:
            await untrusted.get_claim_async("default", "c1")
        assert refused.value.code == "unreachable" and "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
        await _stop(server)

    asyncio.run(run())
