"""An API server stand-in that counts: open connections and requests in flight, now and at most.

It serves ResourceClaims (``GET /apis/resource.k8s.io/v1/namespaces/<ns>/resourceclaims/<name>``, 404 for others)
on 127.0.0.1 from an asyncio loop of its own thread, HTTP/1.1 with keep-alive, and holds every answer back for
``delay_s`` so that requests sent at once are in flight at once. Thousands of connections cost it no thread each."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path
from typing import Any

from tests.fakes.kubeconfig import write_kubeconfig

_CLAIM = re.compile(rb"^GET /apis/resource\.k8s\.io/v1/namespaces/([^/ ]+)/resourceclaims/([^/ ?]+) HTTP/1\.1")


class CountingApi:
    def __init__(self, claims: list[dict[str, Any]], delay_s: float = 0.005) -> None:
        self.claims = {(c["metadata"]["namespace"], c["metadata"]["name"]): json.dumps(c).encode() for c in claims}
        self.delay_s = delay_s
        self.open = self.most_open = 0
        self.in_flight = self.most_in_flight = 0
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="counting-api", daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=4096)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                try:
                    await asyncio.sleep(self.delay_s)
                finally:
                    self.in_flight -= 1
                writer.write(self._answer(head))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()

    def _answer(self, head: bytes) -> bytes:
        match = _CLAIM.match(head)
        body = self.claims.get((match[1].decode(), match[2].decode())) if match else None
        status = "200 OK"
        if body is None:
            status = "404 Not Found"
            body = json.dumps({"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}).encode()
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    def write_kubeconfig(self, path: Path) -> Path:
        return write_kubeconfig(path, self.url)

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
