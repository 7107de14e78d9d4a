"""GETs of single API objects on an asyncio event loop: HTTP/1.1 over a pool of keep-alive connections.

The prepare path reads one ResourceClaim per claim, dozens at once when kubelet starts many pods. On the
DRA server's event loop this costs a write, a read and a JSON parse per claim, where the kubernetes
client's urllib3 path needs a thread per request and ~0.3 ms of CPU under the GIL. Used by
``gpupolicy.plugin.kube.client.Client.get_async``. Only what that read
needs: GET, a status line, headers, a ``Content-Length``, chunked or read-to-close body; TLS with the CA,
client certificate and server name of the client configuration. Proxies are not supported here
(``AsyncGetter.supports`` says so and the caller keeps the kubernetes client's path).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_IDLE = 64
MAX_HEADER_BYTES = 64 * 1024


class _Stale(Exception):
    """A kept-alive connection failed before the response began."""


class HttpError(Exception):
    """The request did not get a complete response (connection, TLS, protocol or timeout)."""


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    """Header names in lower case."""


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    prefix: str
    tls: ssl.SSLContext | None
    server_hostname: str | None


def _target(configuration: Any) -> _Target:
    url = urlsplit(configuration.host)
    host = url.hostname or "localhost"
    if url.scheme != "https":
        return _Target(host, url.port or 80, url.path.rstrip("/"), None, None)
    context = ssl.create_default_context(
        cafile=configuration.ssl_ca_cert or None, cadata=configuration.ca_cert_data or None
    )
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    if not configuration.verify_ssl or configuration.assert_hostname is False:
        context.check_hostname = False
    if not configuration.verify_ssl:
        context.verify_mode = ssl.CERT_NONE
    server_hostname = configuration.tls_server_name or host
    return _Target(host, url.port or 443, url.path.rstrip("/"), context, server_hostname)


def supports(configuration: Any) -> bool:
    """Whether this client can reach the API server of ``configuration`` (no proxy, no pinned host name)."""
    return not configuration.proxy and not isinstance(configuration.assert_hostname, str)


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class AsyncGetter:
    """GET ``path`` on the API server of a kubernetes client ``configuration``; one instance per event loop.

    At most ``max_concurrent`` GETs are in flight at once, so at most as many connections are open; the others wait
    for a turn before their ``timeout_s`` begins."""

    def __init__(
        self,
        configuration: Any,
        headers: Callable[[], Mapping[str, str]],
        timeout_s: float,
        max_concurrent: int = MAX_IDLE,
    ) -> None:
        self._target = _target(configuration)
        self._slots = asyncio.Semaphore(max_concurrent)
        self._headers = headers
        self._timeout = timeout_s
        self._idle: list[_Conn] = []
        netloc = self._target.host if ":" not in self._target.host else f"[{self._target.host}]"
        default = 443 if self._target.tls else 80
        self._host_header = netloc if self._target.port == default else f"{netloc}:{self._target.port}"

    async def get(self, path: str) -> Response:
        async with self._slots:
            return await self._get(path)

    async def _get(self, path: str) -> Response:
        head = self._request_head(path)
        try:
            async with asyncio.timeout(self._timeout):
                while self._idle:
                    conn = self._idle.pop()
                    if conn[0].at_eof():
                        conn[1].close()
                        continue
                    try:
                        return await self._exchange(conn, head, reused=True)
                    except _Stale:  # the server closed the kept-alive connection meanwhile: GET again
                        break
                return await self._exchange(await self._connect(), head, reused=False)
        except TimeoutError:
            raise HttpError(f"no response within {self._timeout:g} s") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc

    def _request_head(self, path: str) -> bytes:
        lines = [f"GET {self._target.prefix}{path} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in self._headers().items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _connect(self) -> _Conn:
        t = self._target
        return await asyncio.open_connection(
            t.host, t.port, ssl=t.tls, server_hostname=t.server_hostname, limit=MAX_HEADER_BYTES
        )

    async def _exchange(self, conn: _Conn, head: bytes, reused: bool) -> Response:
        reader, writer = conn
        try:
            writer.write(head)
            try:
                head_block = await reader.readuntil(b"\r\n\r\n")
            except (OSError, asyncio.IncompleteReadError) as exc:
                if reused and not getattr(exc, "partial", b""):
                    raise _Stale from exc
                raise
            response, keep = await self._read_response(reader, head_block)
        except BaseException:
            writer.close()
            raise
        if keep and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            writer.close()
        return response

    async def _read_response(self, reader: asyncio.StreamReader, head: bytes) -> tuple[Response, bool]:
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ValueError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body, keep = await reader.read(), False
        return Response(int(code), reason, body, headers), keep

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
        for _, writer in idle:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("malformed chunk")
