"""The kubelet-facing gRPC services on unix sockets: DRA v1 and v1beta1 plus device health on
``<plugin-dir>/<driver>/dra.sock``, registration on ``<registry-dir>/<driver>-reg.sock``.

DRA is served first and registration second, so kubelet never learns of an endpoint that does
not answer yet. Sockets and their folders are readable by their owner (and group) only; a stale
socket left by a crash is replaced; ``stop`` removes both sockets.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import grpc

from plugin.health import HealthState
from plugin.prepare import ClaimRef, Preparer
from plugin.proto import (
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


_P = ParamSpec("_P")
_T = TypeVar("_T")
_queued = threading.local()


class _TimedPool(futures.ThreadPoolExecutor):
    """The gRPC server's worker pool; it notes when each call was handed over, so that a handler's
    duration includes its wait for a free worker (without it, fewer workers would look faster)."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> futures.Future[_T]:
        return super().submit(_run_noting_queued, time.perf_counter(), fn, *args, **kwargs)  # type: ignore[arg-type]


def _run_noting_queued(queued: float, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    _queued.at = queued
    try:
        return fn(*args, **kwargs)
    finally:
        _queued.at = None


def _call_began() -> float:
    """When the current call reached the worker pool (now, outside the pool)."""
    return getattr(_queued, "at", None) or time.perf_counter()


class CallStats:
    """Durations of the last calls of each DRA method (from reaching the worker pool to the response),
    summarised in the log at shutdown."""

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
    """NodePrepareResources/NodeUnprepareResources for one proto version (``pb`` module)."""

    def __init__(self, preparer: Preparer, pb: Any, with_share_id: bool, stats: CallStats) -> None:
        self._preparer = preparer
        self._pb = pb
        self._share = with_share_id
        self._stats = stats

    def NodePrepareResources(self, request: Any, context: grpc.ServicerContext) -> Any:
        begin, entered = _call_began(), time.perf_counter()
        try:
            return self._prepare(request)
        finally:
            end = time.perf_counter()
            self._stats.add("NodePrepareResources", end - begin)
            self._stats.add("NodePrepareResources (handler only)", end - entered)

    def _prepare(self, request: Any) -> Any:
        results = self._preparer.prepare(_claims(request))
        response = self._pb.NodePrepareResourcesResponse()
        for uid, result in results.items():
            entry = response.claims[uid]
            if result.error:
                entry.error = result.error
                continue
            for device in result.devices:
                out = entry.devices.add(
                    request_names=list(device.request_names),
                    pool_name=device.pool_name,
                    device_name=device.device_name,
                    cdi_device_ids=list(device.cdi_device_ids),
                )
                if self._share and device.share_id:
                    out.share_id = device.share_id
        return response

    def NodeUnprepareResources(self, request: Any, context: grpc.ServicerContext) -> Any:
        begin = _call_began()
        response = self._pb.NodeUnprepareResourcesResponse()
        for uid, error in self._preparer.unprepare(_claims(request)).items():
            response.claims[uid].error = error
        self._stats.add("NodeUnprepareResources", time.perf_counter() - begin)
        return response


class _HealthServicer:
    def __init__(self, health: HealthState, stopping: threading.Event) -> None:
        self._health = health
        self._stopping = stopping

    def NodeWatchResources(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        pb = health_v1alpha1_pb2
        status = {True: pb.HEALTHY, False: pb.UNHEALTHY}
        for snapshot in self._health.watch(lambda: self._stopping.is_set() or not context.is_active()):
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


def _serve(path: Path, add: Callable[[grpc.Server], None], workers: int, own_folder: bool) -> grpc.Server:
    prepare_socket(path, own_folder)
    server = grpc.server(_TimedPool(max_workers=workers, thread_name_prefix=path.stem))
    add(server)
    old = os.umask(0o117)
    try:
        if server.add_insecure_port(f"unix://{path}") == 0:
            raise OSError(f"cannot listen on {path}")
        server.start()
    finally:
        os.umask(old)
    os.chmod(path, SOCKET_MODE)
    return server


class PluginServer:
    """Both sockets of one driver; ``start`` serves DRA then registration; ``stop`` removes them."""

    def __init__(
        self,
        *,
        driver: str,
        plugin_dir: Path,
        registry_dir: Path,
        preparer: Preparer,
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
        self._servers: list[grpc.Server] = []
        self.stats = CallStats()

    def start(self) -> None:
        def add_dra(server: grpc.Server) -> None:
            dra_v1_pb2_grpc.add_DRAPluginServicer_to_server(
                _DraServicer(self._preparer, dra_v1_pb2, True, self.stats), server
            )
            dra_v1beta1_pb2_grpc.add_DRAPluginServicer_to_server(
                _DraServicer(self._preparer, dra_v1beta1_pb2, False, self.stats), server
            )
            health_v1alpha1_pb2_grpc.add_DRAResourceHealthServicer_to_server(
                _HealthServicer(self._health, self._stopping), server
            )

        def add_reg(server: grpc.Server) -> None:
            servicer = _RegistrationServicer(self.driver, str(self.dra_socket), self.registration, self._on_rejected)
            pluginregistration_pb2_grpc.add_RegistrationServicer_to_server(servicer, server)

        self._servers.append(_serve(self.dra_socket, add_dra, self._workers, own_folder=True))
        self._servers.append(_serve(self.reg_socket, add_reg, 2, own_folder=False))
        log.info("serving DRA on %s, registration on %s", self.dra_socket, self.reg_socket)

    def stop(self, grace_s: float = 1.0) -> None:
        self._stopping.set()
        self._health.wake()
        for server in reversed(self._servers):
            server.stop(grace_s).wait()
        self._servers.clear()
        for path in (self.reg_socket, self.dra_socket):
            path.unlink(missing_ok=True)
        for line in self.stats.summary():
            log.info("%s", line)
