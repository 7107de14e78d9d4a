"""The plugin process end to end: real unix sockets, kubelet-like client, API-server stand-in."""

from __future__ import annotations

import json
import re
import socket
import stat
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.kubelet.nvml.sim import inject_fault
from gpupolicy.plugin.kubelet.nvml.types import EventKind
from tests.fakes.kube_stub import StubApiServer
from tests.plugin.kubelet.helpers import DRIVER, NODE, claim_obj
from tests.plugin.kubelet.proc import PluginProcess
from tests.scrape import scrape

pytestmark = pytest.mark.slow


@pytest.fixture
def api() -> Iterator[StubApiServer]:
    server = StubApiServer().start()
    server.kube.put_node(NODE)
    yield server
    server.stop()


@pytest.fixture
def plugin(tmp_path: Path, api: StubApiServer) -> Iterator[PluginProcess]:
    proc = PluginProcess(tmp_path, api.write_kubeconfig(tmp_path / "kubeconfig"))
    yield proc
    proc.kill()


def _wait(predicate, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _published(api: StubApiServer) -> bool:
    slices = list(api.kube.slices.values())
    return bool(slices) and all(s["spec"]["pool"]["resourceSliceCount"] == len(slices) for s in slices)


def _claim(api: StubApiServer, name: str, device: str) -> tuple[str, str, str]:
    obj = api.kube.put_claim(claim_obj(name, [("gpu", device)]))
    return ("default", obj["metadata"]["uid"], name)


def test_registration_prepare_unprepare_and_clean_exit(plugin: PluginProcess, api: StubApiServer) -> None:
    plugin.start()
    kubelet = plugin.kubelet()
    conn = kubelet.connect()
    assert conn.info.type == "DRAPlugin" and conn.info.name == DRIVER
    assert conn.info.endpoint == str(plugin.dra_socket)
    assert list(conn.info.supported_versions) == ["v1.DRAPlugin", "v1beta1.DRAPlugin", "v1alpha1.DRAResourceHealth"]
    assert conn.version == "v1.DRAPlugin"
    for path in (plugin.dra_socket, plugin.reg_socket, plugin.dra_socket.parent, plugin.registry_dir):
        assert path.stat().st_mode & stat.S_IRWXO == 0, path
    claim = _claim(api, "c1", "gpu-2")
    response = kubelet.prepare([claim])
    entry = response.claims[claim[1]]
    assert entry.error == ""
    assert [(d.pool_name, d.device_name, list(d.request_names)) for d in entry.devices] == [(NODE, "gpu-2", ["gpu"])]
    assert entry.devices[0].cdi_device_ids == [f"k8s.{DRIVER}/claim={claim[1]}-gpu-2"]
    assert plugin.cdi_files() == [f"k8s.{DRIVER}-claim_{claim[1]}.json"]
    assert kubelet.unprepare([claim]).claims[claim[1]].error == ""
    assert plugin.cdi_files() == []
    _wait(lambda: _published(api))
    for obj in api.kube.slices.values():
        assert obj["spec"]["pool"]["name"] == NODE and obj["spec"]["nodeName"] == NODE
        assert obj["metadata"]["ownerReferences"][0]["uid"] == api.kube.nodes[NODE]["metadata"]["uid"]
    kubelet.close()
    assert plugin.terminate() == 0
    assert not plugin.dra_socket.exists() and not plugin.reg_socket.exists()
    assert api.kube.slices  # a restart or upgrade keeps the slices; `plugin withdraw` removes them


def test_a_checkpoint_of_a_newer_version_stops_the_process_and_is_kept(
    plugin: PluginProcess, api: StubApiServer
) -> None:
    plugin.state_dir.mkdir(parents=True)
    checkpoint = plugin.state_dir / "checkpoint.json"
    raw = b'{"version": 3, "bootId": "boot-1", "somethingNew": {}}'
    checkpoint.write_bytes(raw)
    plugin.start()
    assert plugin.wait() == 1
    logs = plugin.logs()
    assert f"error: cannot start the plugin: {checkpoint}: checkpoint_version_unsupported: version: 3 is newer" in logs
    assert "Traceback" not in logs and not plugin.dra_socket.exists() and not plugin.reg_socket.exists()
    assert checkpoint.read_bytes() == raw and sorted(p.name for p in plugin.state_dir.glob("checkpoint*")) == [
        "checkpoint.json"
    ]
    assert [e["reason"] for e in api.kube.events] == ["CheckpointVersionUnsupported"]


def _log_lines(plugin: PluginProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in plugin.logs().splitlines() if line.startswith("{")]


def _metrics_url(plugin: PluginProcess) -> str:
    _wait(lambda: any(line["msg"] == "metrics" for line in _log_lines(plugin)))
    return str(next(line["address"] for line in _log_lines(plugin) if line["msg"] == "metrics"))


def test_metrics_endpoint_and_json_logs(plugin: PluginProcess, api: StubApiServer) -> None:
    plugin.start()
    kubelet = plugin.kubelet()
    kubelet.connect()
    url = _metrics_url(plugin)
    claim = _claim(api, "c1", "gpu-2")
    assert kubelet.prepare([claim]).claims[claim[1]].error == ""
    after_prepare = scrape(url)
    assert after_prepare("gpupolicy_plugin_prepare_duration_seconds_count") == 1
    assert after_prepare("gpupolicy_plugin_prepare_duration_seconds_bucket", le="10.0") == 1
    assert after_prepare("gpupolicy_plugin_prepared_claims") == 1
    assert kubelet.unprepare([claim]).claims[claim[1]].error == ""
    missing = ("default", "00000000-0000-4000-8000-000000000000", "missing")
    assert "cannot read ResourceClaim default/missing" in kubelet.prepare([missing]).claims[missing[1]].error
    _wait(lambda: _published(api))
    published = Counter(
        (s["spec"]["pool"]["name"], d["attributes"]["type"]["string"])
        for s in api.kube.slices.values()
        for d in s["spec"].get("devices") or []
    )
    _wait(lambda: scrape(url).names() >= {"gpupolicy_plugin_published_devices"})
    samples = scrape(url)
    kubelet.close()
    assert samples("gpupolicy_plugin_prepare_duration_seconds_count") == 2
    assert samples("gpupolicy_plugin_unprepare_duration_seconds_count") == 1
    assert samples("gpupolicy_plugin_prepared_claims") == 0
    assert samples("gpupolicy_plugin_errors_total", operation="prepare", code="claim_unreadable") == 1
    assert {(pool, kind): samples("gpupolicy_plugin_published_devices", pool=pool, type=kind)
            for pool, kind in published} == published  # fmt: skip
    assert set(published) == {(NODE, "gpu"), (NODE, "mig")}
    assert samples("process_resident_memory_bytes") > 0 and samples("process_start_time_seconds") > 0
    assert plugin.terminate() == 0
    lines = _log_lines(plugin)
    assert lines and all(list(line)[:5] == ["ts", "level", "component", "logger", "msg"] for line in lines)
    assert {line["component"] for line in lines} == {"gpupolicy-plugin"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"]) for line in lines)
    failed = next(line for line in lines if line["msg"].startswith("prepare default/missing"))
    assert failed["level"] == "warning" and failed["code"] == "claim_unreadable"
    assert failed["logger"] == "gpupolicy.plugin.kubelet.prepare"


def test_v1beta1_only_kubelet(plugin: PluginProcess, api: StubApiServer) -> None:
    plugin.start()
    kubelet = plugin.kubelet()
    kubelet.versions = ("v1beta1.DRAPlugin",)
    assert kubelet.connect().version == "v1beta1.DRAPlugin"
    claim = _claim(api, "b", "gpu-3")
    assert kubelet.prepare([claim]).claims[claim[1]].devices[0].device_name == "gpu-3"
    kubelet.close()


def test_rejected_registration_is_logged(plugin: PluginProcess, api: StubApiServer) -> None:
    plugin.start()
    kubelet = plugin.kubelet()
    kubelet.versions = ("v2.DRAPlugin",)  # a kubelet that knows none of the advertised versions
    with pytest.raises(TimeoutError, match=r"none of .* is supported"):
        kubelet.connect(timeout_s=8)
    _wait(lambda: "kubelet rejected plugin gpu.gpupolicy.dev: none of" in plugin.logs())
    _wait(lambda: {e["reason"] for e in api.kube.events} == {"RegistrationFailed"})


def test_stale_sockets_are_replaced(plugin: PluginProcess) -> None:
    for path in (plugin.reg_socket, plugin.dra_socket):
        path.parent.mkdir(parents=True, exist_ok=True)
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(path))
        stale.close()
    plugin.start()
    kubelet = plugin.kubelet()
    assert kubelet.connect().info.name == DRIVER
    kubelet.close()


def test_serves_while_api_server_down_then_recovers(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = StubApiServer(port=port)  # not started yet
    proc = PluginProcess(tmp_path, api.write_kubeconfig(tmp_path / "kubeconfig"))
    proc.start()
    try:
        kubelet = proc.kubelet()
        kubelet.connect()
        claim_doc = claim_obj("late", [("gpu", "gpu-3")])
        api.kube.put_claim(claim_doc)
        claim = ("default", claim_doc["metadata"]["uid"], "late")
        assert "cannot read ResourceClaim default/late" in kubelet.prepare([claim]).claims[claim[1]].error
        api.kube.put_node(NODE)
        api.start()
        _wait(lambda: _published(api), 30)
        assert kubelet.prepare([claim]).claims[claim[1]].error == ""
        kubelet.close()
    finally:
        proc.kill()
        api.stop()


def test_health_events_taint_devices_and_stream(plugin: PluginProcess, api: StubApiServer) -> None:
    plugin.start()
    kubelet = plugin.kubelet()
    stream = kubelet.connect().health_stream()
    first = next(stream)
    assert {d.device.device_name for d in first.devices} >= {"gpu-2", "gpu-3"}
    assert all(d.health == 1 for d in first.devices)
    _wait(lambda: _published(api))
    inject_fault(plugin.state_dir / "sim-nvml.json", 3, EventKind.XID, 79)
    update = next(stream)
    unhealthy = {d.device.device_name: d for d in update.devices if d.health == 2}
    assert list(unhealthy) == ["gpu-3"] and unhealthy["gpu-3"].message == "Xid 79"

    def tainted() -> list[str]:
        return [
            d["name"]
            for s in api.kube.slices.values()
            for d in s["spec"].get("devices", [])
            if any(t["key"] == f"{DRIVER}/xid" and t.get("value") == "79" for t in d.get("taints", []))
        ]

    _wait(lambda: tainted() == ["gpu-3"])
    inject_fault(plugin.state_dir / "sim-nvml.json", 3, EventKind.RECOVERED)
    assert all(d.health == 1 for d in next(stream).devices)
    _wait(lambda: tainted() == [])
    stream.cancel()
    kubelet.close()


def test_slices_republished_when_deleted_or_edited(plugin: PluginProcess, api: StubApiServer) -> None:
    plugin.start()
    _wait(lambda: _published(api))
    generation = next(iter(api.kube.slices.values()))["spec"]["pool"]["generation"]
    name = sorted(api.kube.slices)[-1]
    api.kube.delete_slice(name)
    _wait(lambda: name in api.kube.slices)
    gens = {s["spec"]["pool"]["generation"] for s in api.kube.slices.values()}
    assert gens == {generation + 1}
    victim = api.kube.slices[name]
    victim["spec"]["devices"] = victim["spec"]["devices"][:1]
    _wait(lambda: len(api.kube.slices[name]["spec"]["devices"]) > 1)
    assert {s["spec"]["pool"]["generation"] for s in api.kube.slices.values()} == {generation + 2}
