"""The kubelet-facing gRPC services on unix sockets: DRA v1 and v1beta1 plus device health on
``<plugin-dir>/<driver>/dra.sock``, registration on ``<registry-dir>/<driver>-reg.sock``.

DRA is served first and registration second, so kubelet never learns of an endpoint that does
not answer yet. Sockets and their folders are readable by their owner (and group) only; a stale
socket left by a crash is replaced; ``stop`` removes both sockets.

DRA and health run on one asyncio event loop (``grpc.aio``): kubelet sends many claims at once, and a
thread per call made them queue for the GIL behind each other's hand-offs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc

from gpupolicy.plugin.kubelet.claims import ClaimRef, PrepareResult
from gpupolicy.plugin.kubelet.health import HealthState
from gpupolicy.plugin.kubelet.prepare_loop import LoopPreparer
from gpupolicy.plugin.kubelet.proto import (
    dra_v1_pb2,
    dra_v1_pb2_grpc,
    dra_v1beta1_pb2,
    dra_v1beta1_pb2_grpc,
    health_v1alpha1_pb2,
    health_v1alpha1_pb2_grpc,
    pluginregistration_pb2,
    pluginregistration_pb2_grpc,
)

log = logging.getLogger(__name__)
PLUGIN_TYPE = "DRAPlugin"
SUPPORTED_VERSIONS = ("v1.DRAPlugin", "v1beta1.DRAPlugin", "v1alpha1.DRAResourceHealth")
DIR_MODE = 0o750
SOCKET_MODE = 0o660
_T = TypeVar("_T")
SENT_AT_KEY = "gpupolicy-sent-at-ns"


class CallStats:
    """Durations of the last calls of each DRA method (from gRPC handing the call to the handler to the
    response; with ``add_since_sent`` also from the client's stamp), summarised in the log at shutdown."""

    def __init__(self, keep: int = 10000) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self.durations: dict[str, list[float]] = {}

    def add(self, method: str, seconds: float) -> None:
        with self._lock:
            values = self.durations.setdefault(method, [])
            values.append(seconds)
            if len(values) > self._keep:
                del values[: len(values) - self._keep]

    def add_since_sent(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """When the client stamped the call (``SENT_AT_KEY``: CLOCK_MONOTONIC in ns, one clock for all processes
        of a host, as a benchmark does), its age now: an upper bound of the time since it reached the plugin
        that also covers the wait before the handler starts."""
        for key, value in context.invocation_metadata() or ():
            if key == SENT_AT_KEY:
                with contextlib.suppress(ValueError):
                    self.add(f"{method} (since sent)", (time.monotonic_ns() - int(value)) / 1e9)

    def summary(self) -> list[str]:
        lines = []
        with self._lock:
            for method, values in sorted(self.durations.items()):
                ordered = sorted(values)
                p50 = ordered[len(ordered) // 2] * 1000
                p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
                lines.append(
                    f"{method}: {len(ordered)} calls, p50={p50:.1f}ms p99={p99:.1f}ms max={ordered[-1] * 1000:.1f}ms"
                )
        return lines


def _claims(request: Any) -> list[ClaimRef]:
    return [ClaimRef(c.namespace, c.uid, c.name) for c in request.claims]


class _DraServicer:
    """NodePrepareResources/NodeUnprepareResources for one proto version (``pb`` module), on the event loop.

    Without a thread per call: the preparer does what blocks (checkpoint writes, MIG creation, sharing
    daemons) on ``executor`` threads."""

    def __init__(
        self, preparer: LoopPreparer, pb: Any, with_share_id: bool, stats: CallStats, executor: futures.Executor
    ) -> None:
        self._preparer = preparer
        self._pb = pb
        self._share = with_share_id
        self._stats = stats
        self._executor = executor
        self._metrics = preparer.metrics

    async def NodePrepareResources(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        begin = time.perf_counter()
        try:
            return self._response(await self._preparer.prepare_async(_claims(request), self._executor))
        finally:
            elapsed = time.perf_counter() - begin
            self._stats.add("NodePrepareResources", elapsed)
            self._metrics.prepare_seconds.observe(elapsed)
            self._stats.add_since_sent("NodePrepareResources", context)

    def _response(self, results: dict[str, PrepareResult]) -> Any:
        response = self._pb.NodePrepareResourcesResponse()
        for uid, result in results.items():
            entry = response.claims[uid]
            if result.error:
                entry.error = result.error
                continue
            for device in result.devices:
                out = entry.devices.add(
                    request_names=device.request_names,
                    pool_name=device.pool_name,
                    device_name=device.device_name,
                    cdi_device_ids=device.cdi_device_ids,
                )
                if self._share and device.share_id:
                    out.share_id = device.share_id
        return response

    async def NodeUnprepareResources(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        begin = time.perf_counter()
        errors = await self._preparer.unprepare_async(_claims(request), self._executor)
        response = self._pb.NodeUnprepareResourcesResponse()
        for uid, error in errors.items():
            response.claims[uid].error = error
        elapsed = time.perf_counter() - begin
        self._stats.add("NodeUnprepareResources", elapsed)
        self._metrics.unprepare_seconds.observe(elapsed)
        return response


class _HealthServicer:
    """The health stream; each watcher waits for changes on a thread of ``executor``."""

    def __init__(self, health: HealthState, stopping: threading.Event, executor: futures.Executor) -> None:
        self._health = health
        self._stopping = stopping
        self._executor = executor

    async def NodeWatchResources(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        pb = health_v1alpha1_pb2
        status = {True: pb.HEALTHY, False: pb.UNHEALTHY}
        gone = threading.Event()  # the stream ended (client left, server stopping): the watch thread ends too
        snapshots = self._health.watch(lambda: self._stopping.is_set() or gone.is_set())
        loop = asyncio.get_running_loop()
        try:
            while (snapshot := await loop.run_in_executor(self._executor, next, snapshots, None)) is not None:
                yield pb.NodeWatchResourcesResponse(
                    devices=[
                        pb.DeviceHealth(
                            device=pb.DeviceIdentifier(pool_name=d.pool, device_name=d.device),
                            health=status[d.healthy],
                            last_updated_time=int(d.since),
                            message=d.message,
                        )
                        for d in snapshot
                    ]
                )
        finally:
            gone.set()


@dataclass
class RegistrationStatus:
    """What kubelet told us through NotifyRegistrationStatus."""

    registered: bool = False
    error: str = ""
    event: threading.Event = field(default_factory=threading.Event)


class _RegistrationServicer:
    def __init__(
        self, driver: str, endpoint: str, status: RegistrationStatus, on_rejected: Callable[[str], None] | None
    ) -> None:
        self._on_rejected = on_rejected
        self._info = pluginregistration_pb2.PluginInfo(
            type=PLUGIN_TYPE, name=driver, endpoint=endpoint, supported_versions=list(SUPPORTED_VERSIONS)
        )
        self._status = status

    def GetInfo(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._info

    def NotifyRegistrationStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._status.registered = request.plugin_registered
        self._status.error = request.error
        if request.plugin_registered:
            log.info("kubelet registered plugin %s", self._info.name)
        else:
            log.error("kubelet rejected plugin %s: %s", self._info.name, request.error or "no reason given")
            if self._on_rejected is not None:
                self._on_rejected(request.error or "no reason given")
        self._status.event.set()
        return pluginregistration_pb2.RegistrationStatusResponse()


def prepare_socket(path: Path, own_folder: bool) -> None:
    """Create the socket's folder (not world-accessible) and remove a stale socket there.

    ``own_folder``: the folder is the driver's own (``<plugin-dir>/<driver>``) and its mode is
    enforced; a shared folder (kubelet's registry) is only created with that mode when missing."""
    if len(str(path)) > 107:
        raise OSError(f"socket path {path} is longer than the 107 characters a unix socket path may have")
    existed = path.parent.is_dir()
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if own_folder or not existed:
        os.chmod(path.parent, DIR_MODE)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(mode):
        log.info("replacing stale socket %s", path)
        path.unlink()
    else:
        raise FileExistsError(f"{path} exists and is not a socket")


def _listen(path: Path, server: grpc.Server | grpc.aio.Server, own_folder: bool) -> None:
    """Bind ``server`` to the unix socket ``path``, created with the socket's mode from the start."""
    prepare_socket(path, own_folder)
    old = os.umask(0o117)
    try:
        if server.add_insecure_port(f"unix://{path}") == 0:
            raise OSError(f"cannot listen on {path}")
    finally:
        os.umask(old)
    os.chmod(path, SOCKET_MODE)


class _LoopThread:
    """An asyncio event loop on its own thread, for the DRA server."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class PluginServer:
    """Both sockets of one driver; ``start`` serves DRA then registration; ``stop`` removes them.

    DRA and health are served by an asyncio gRPC server (one event-loop thread, the claims' work on
    ``workers`` threads); registration, called a few times in the plugin's life, by a small
    thread-pool server."""

    def __init__(
        self,
        *,
        driver: str,
        plugin_dir: Path,
        registry_dir: Path,
        preparer: LoopPreparer,
        health: HealthState,
        workers: int = 64,
        on_rejected: Callable[[str], None] | None = None,
    ) -> None:
        self._on_rejected = on_rejected
        self.driver = driver
        self.dra_socket = plugin_dir / driver / "dra.sock"
        self.reg_socket = registry_dir / f"{driver}-reg.sock"
        self.registration = RegistrationStatus()
        self._preparer = preparer
        self._health = health
        self._workers = workers
        self._stopping = threading.Event()
        self._loop: _LoopThread | None = None
        self._dra: grpc.aio.Server | None = None
        self._reg: grpc.Server | None = None
        self._executors: list[futures.ThreadPoolExecutor] = []
        self.stats = CallStats()

    async def _start_dra(self) -> grpc.aio.Server:
        claims = futures.ThreadPoolExecutor(self._workers, thread_name_prefix="claims")
        watchers = futures.ThreadPoolExecutor(8, thread_name_prefix="health")
        self._executors += [claims, watchers]
        server = grpc.aio.server()
        dra_v1_pb2_grpc.add_DRAPluginServicer_to_server(
            _DraServicer(self._preparer, dra_v1_pb2, True, self.stats, claims), server
        )
        dra_v1beta1_pb2_grpc.add_DRAPluginServicer_to_server(
            _DraServicer(self._preparer, dra_v1beta1_pb2, False, self.stats, claims), server
        )
        health_v1alpha1_pb2_grpc.add_DRAResourceHealthServicer_to_server(
            _HealthServicer(self._health, self._stopping, watchers), server
        )
        _listen(self.dra_socket, server, own_folder=True)
        await server.start()
        return server

    def start(self) -> None:
        self._loop = _LoopThread("dra")
        self._dra = self._loop.run(self._start_dra())
        self._reg = grpc.server(futures.ThreadPoolExecutor(2, thread_name_prefix="registration"))
        servicer = _RegistrationServicer(self.driver, str(self.dra_socket), self.registration, self._on_rejected)
        pluginregistration_pb2_grpc.add_RegistrationServicer_to_server(servicer, self._reg)
        _listen(self.reg_socket, self._reg, own_folder=False)
        self._reg.start()
        log.info("serving DRA on %s, registration on %s", self.dra_socket, self.reg_socket)

    def stop(self, grace_s: float = 1.0) -> None:
        self._stopping.set()
        self._health.wake()
        if self._reg is not None:
            self._reg.stop(grace_s).wait()
            self._reg = None
        if self._loop is not None:
            if self._dra is not None:
                self._loop.run(self._dra.stop(grace_s))
                self._dra = None
            self._loop.run(self._preparer.kube.aclose())
            self._loop.close()
            self._loop = None
        for executor in self._executors:
            executor.shutdown(wait=False)
        self._executors.clear()
        for path in (self.reg_socket, self.dra_socket):
            path.unlink(missing_ok=True)
        for line in self.stats.summary():
            log.info("%s", line)
