"""A test client that behaves like kubelet towards a DRA plugin.

It watches the registry folder for ``*-reg.sock``, calls ``GetInfo``, checks the plugin type,
picks the first advertised DRA version it knows (kubelet's rule), reports the registration
result, connects to the advertised endpoint and sends Prepare/Unprepare, retrying across plugin
restarts until a deadline (kubelet retries failed claims on its next pod sync).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

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

KNOWN_VERSIONS = {
    "v1.DRAPlugin": (dra_v1_pb2, dra_v1_pb2_grpc),
    "v1beta1.DRAPlugin": (dra_v1beta1_pb2, dra_v1beta1_pb2_grpc),
}
Claim = tuple[str, str, str]  # namespace, uid, name


@dataclass
class Connection:
    info: Any
    version: str
    pb: Any
    channel: grpc.Channel
    stub: Any

    def health_stream(self) -> Any:
        stub = health_v1alpha1_pb2_grpc.DRAResourceHealthStub(self.channel)
        return stub.NodeWatchResources(health_v1alpha1_pb2.NodeWatchResourcesRequest())


class FakeKubelet:
    def __init__(self, registry_dir: Path, driver: str, versions: tuple[str, ...] = tuple(KNOWN_VERSIONS)) -> None:
        self.registry_dir = registry_dir
        self.driver = driver
        self.versions = versions
        self.conn: Connection | None = None
        self.registrations = 0

    def _register(self, timeout_s: float) -> Connection:
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            for sock in sorted(self.registry_dir.glob("*-reg.sock")) if self.registry_dir.is_dir() else []:
                try:
                    return self._handshake(sock)
                except (grpc.RpcError, RuntimeError) as exc:
                    last = exc
            time.sleep(0.05)
        raise TimeoutError(f"no plugin registered in {self.registry_dir}: {last}")

    def _handshake(self, sock: Path) -> Connection:
        with grpc.insecure_channel(f"unix://{sock}") as channel:
            reg = pluginregistration_pb2_grpc.RegistrationStub(channel)
            info = reg.GetInfo(pluginregistration_pb2.InfoRequest(), timeout=2)
            if info.type != "DRAPlugin" or info.name != self.driver:
                reg.NotifyRegistrationStatus(
                    pluginregistration_pb2.RegistrationStatus(plugin_registered=False, error="unexpected plugin"),
                    timeout=2,
                )
                raise RuntimeError(f"unexpected plugin {info.type}/{info.name}")
            version = next((v for v in info.supported_versions if v in self.versions), None)
            if version is None:
                error = f"none of {list(info.supported_versions)} is supported"
                reg.NotifyRegistrationStatus(
                    pluginregistration_pb2.RegistrationStatus(plugin_registered=False, error=error), timeout=2
                )
                raise RuntimeError(error)
            reg.NotifyRegistrationStatus(pluginregistration_pb2.RegistrationStatus(plugin_registered=True), timeout=2)
        self.registrations += 1
        pb, pb_grpc = KNOWN_VERSIONS[version]
        dra_channel = grpc.insecure_channel(f"unix://{info.endpoint}")
        return Connection(info, version, pb, dra_channel, pb_grpc.DRAPluginStub(dra_channel))

    def connect(self, timeout_s: float = 10.0) -> Connection:
        if self.conn is None:
            self.conn = self._register(timeout_s)
        return self.conn

    def _call(self, method: Callable[[Connection], Any], timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            conn = self.connect(max(0.1, deadline - time.monotonic()))
            try:
                return method(conn)
            except grpc.RpcError as exc:
                if (
                    exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
                    or time.monotonic() > deadline
                ):
                    raise
                conn.channel.close()
                self.conn = None
                time.sleep(0.05)

    def prepare(self, claims: list[Claim], timeout_s: float = 30.0) -> Any:
        def call(conn: Connection) -> Any:
            request = conn.pb.NodePrepareResourcesRequest(
                claims=[conn.pb.Claim(namespace=ns, uid=uid, name=name) for ns, uid, name in claims]
            )
            return conn.stub.NodePrepareResources(request, timeout=45)

        return self._call(call, timeout_s)

    def unprepare(self, claims: list[Claim], timeout_s: float = 30.0) -> Any:
        def call(conn: Connection) -> Any:
            request = conn.pb.NodeUnprepareResourcesRequest(
                claims=[conn.pb.Claim(namespace=ns, uid=uid, name=name) for ns, uid, name in claims]
            )
            return conn.stub.NodeUnprepareResources(request, timeout=45)

        return self._call(call, timeout_s)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.channel.close()
            self.conn = None
