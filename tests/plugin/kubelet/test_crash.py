"""SIGKILL the plugin at every step of prepare and unprepare, restart it, and check that kubelet's
retry succeeds and that no MIG instance, CDI file, MPS daemon or time-slice setting leaks; and that a
claim whose unprepare was interrupted is never answered as prepared without its devices."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpupolicy.plugin.kubelet.faults import ENV, PLAIN_UNPREPARE_STEPS, PREPARE_STEPS, UNPREPARE_STEPS
from tests.fakes.kube_stub import StubApiServer
from tests.plugin.kubelet.helpers import NODE, claim_obj, opaque
from tests.plugin.kubelet.kubelet import FakeKubelet
from tests.plugin.kubelet.proc import PluginProcess

pytestmark = pytest.mark.slow
MPS = {"strategy": "MPS", "mpsConfig": {"defaultActiveThreadPercentage": 50}}
TIMESLICE = {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": "Medium"}}


@pytest.fixture
def api() -> Iterator[StubApiServer]:
    server = StubApiServer().start()
    server.kube.put_node(NODE)
    yield server
    server.stop()


@pytest.fixture
def plugin(tmp_path: Path, api: StubApiServer) -> Iterator[PluginProcess]:
    """The plugin as a process against the stub API server; killed at the end whatever the test did."""
    proc = PluginProcess(tmp_path, api.write_kubeconfig(tmp_path / "kubeconfig"))
    yield proc
    proc.kill()


def _claim(api: StubApiServer) -> tuple[str, str, str]:
    """Two dynamic MIG devices with MPS and a full GPU with time-slicing: every kind of step."""
    doc = claim_obj(
        "crashy",
        [("mig", "gpu-0-mig-3g20gb-9-4"), ("mig2", "gpu-1-mig-2g10gb-14-2"), ("full", "gpu-2")],
        config=[
            opaque("MigDeviceConfig", MPS, requests=["mig", "mig2"]),
            opaque("GpuConfig", TIMESLICE, requests=["full"]),
        ],
    )
    api.kube.put_claim(doc)
    return ("default", doc["metadata"]["uid"], "crashy")


def _plain_claim(api: StubApiServer) -> tuple[str, str, str]:
    """A whole GPU without sharing."""
    doc = claim_obj("plain", [("gpu", "gpu-3")])
    api.kube.put_claim(doc)
    return ("default", doc["metadata"]["uid"], "plain")


def _assert_prepared(plugin: PluginProcess, uid: str) -> None:
    assert plugin.mig_instances() == [(0, "3g.20gb", 4), (1, "2g.10gb", 2)]
    assert plugin.cdi_files() == [f"k8s.gpu.gpupolicy.dev-claim_{uid}.json"]
    commands = plugin.commands_state()
    assert len(commands["mps"]) == 1 and list(commands["timeslice"].values()) == [2]
    assert [c["state"] for c in plugin.checkpoint_claims().values()] == ["PrepareCompleted"]


def _assert_clean(plugin: PluginProcess) -> None:
    assert plugin.mig_instances() == []
    assert plugin.cdi_files() == []
    assert plugin.commands_state() == {"timeslice": {}, "mps": {}}
    assert plugin.checkpoint_claims() == {}
    assert not (plugin.state_dir / "mps").exists() or not any((plugin.state_dir / "mps").iterdir())


def _killed_by(call: Callable[[], object], plugin: PluginProcess) -> None:
    """``call`` reaches the crash point: the plugin dies of SIGKILL and the call fails with it."""
    with pytest.raises(Exception, match=r"UNAVAILABLE|Socket closed|Connection reset"):
        call()
    assert plugin.wait() == -9


@pytest.mark.parametrize("step", PREPARE_STEPS)
def test_killed_during_prepare(plugin: PluginProcess, api: StubApiServer, step: str) -> None:
    claim = _claim(api)
    plugin.start({ENV: step})
    kubelet = plugin.kubelet()
    kubelet.connect()
    _killed_by(lambda: kubelet.prepare([claim], timeout_s=0), plugin)
    plugin.start()
    _prepare_then_clean_up(plugin, kubelet, claim)


@pytest.mark.parametrize("step", UNPREPARE_STEPS)
def test_killed_during_unprepare(plugin: PluginProcess, api: StubApiServer, step: str) -> None:
    claim = _claim(api)
    plugin.start({ENV: step})
    kubelet = plugin.kubelet()
    assert kubelet.prepare([claim]).claims[claim[1]].error == ""
    _assert_prepared(plugin, claim[1])
    _killed_by(lambda: kubelet.unprepare([claim], timeout_s=0), plugin)
    plugin.start()
    assert kubelet.unprepare([claim]).claims[claim[1]].error == "", plugin.logs()
    _assert_clean(plugin)
    kubelet.close()


@pytest.mark.parametrize("step", UNPREPARE_STEPS)
def test_a_prepare_after_an_interrupted_unprepare_sets_the_claim_up_afresh(
    plugin: PluginProcess, api: StubApiServer, step: str
) -> None:
    """kubelet may prepare the claim again instead of retrying the unprepare (a new pod uses it): the answer
    must come with a CDI spec, MIG instances and an MPS daemon that exist, not with the torn-down ones."""
    claim = _claim(api)
    plugin.start({ENV: step})
    kubelet = plugin.kubelet()
    assert kubelet.prepare([claim]).claims[claim[1]].error == ""
    _killed_by(lambda: kubelet.unprepare([claim], timeout_s=0), plugin)
    plugin.start()
    _prepare_then_clean_up(plugin, kubelet, claim)


@pytest.mark.parametrize("step", UNPREPARE_STEPS[:-1])
def test_restart_without_retry_finishes_an_interrupted_unprepare(
    plugin: PluginProcess, api: StubApiServer, step: str
) -> None:
    """The pod is gone and kubelet does not come back to the claim: start-up finishes the teardown alone."""
    claim = _claim(api)
    plugin.start({ENV: step})
    kubelet = plugin.kubelet()
    assert kubelet.prepare([claim]).claims[claim[1]].error == ""
    _killed_by(lambda: kubelet.unprepare([claim], timeout_s=0), plugin)
    assert [c["state"] for c in plugin.checkpoint_claims().values()] == ["UnprepareStarted"]
    plugin.start()
    kubelet.close()
    plugin.kubelet().connect()
    _assert_clean(plugin)


def test_restart_without_retry_rolls_back_interrupted_prepare(plugin: PluginProcess, api: StubApiServer) -> None:
    """kubelet may never retry (the pod was deleted): start-up reconciliation cleans up alone."""
    claim = _claim(api)
    plugin.start({ENV: "prepare-cdi"})
    kubelet = plugin.kubelet()
    kubelet.connect()
    with pytest.raises(Exception, match=r"UNAVAILABLE|Socket closed|Connection reset"):
        kubelet.prepare([claim], timeout_s=0)
    plugin.wait()
    assert plugin.mig_instances() != []
    plugin.start()
    kubelet.close()
    plugin.kubelet().connect()
    _assert_clean(plugin)


@pytest.mark.parametrize("step", ["prepare-cdi", "prepare-completed"])
def test_killed_during_prepare_of_a_plain_gpu(plugin: PluginProcess, api: StubApiServer, step: str) -> None:
    """A whole GPU without sharing has no PrepareStarted record: the CDI file is the only trace."""
    claim = _plain_claim(api)
    plugin.start({ENV: step})
    kubelet = plugin.kubelet()
    kubelet.connect()
    _killed_by(lambda: kubelet.prepare([claim], timeout_s=0), plugin)
    plugin.start()
    assert kubelet.prepare([claim]).claims[claim[1]].error == "", plugin.logs()
    assert plugin.cdi_files() == [f"k8s.gpu.gpupolicy.dev-claim_{claim[1]}.json"]
    assert kubelet.unprepare([claim]).claims[claim[1]].error == ""
    _assert_clean(plugin)
    kubelet.close()


@pytest.mark.parametrize("step", PLAIN_UNPREPARE_STEPS)
def test_killed_during_unprepare_of_a_plain_gpu(plugin: PluginProcess, api: StubApiServer, step: str) -> None:
    """A whole GPU without sharing: its record is dropped before its CDI spec is removed, so a kill leaves at
    most an orphan spec, and a prepare afterwards writes the spec again."""
    claim = _plain_claim(api)
    spec = [f"k8s.gpu.gpupolicy.dev-claim_{claim[1]}.json"]
    plugin.start({ENV: step})
    kubelet = plugin.kubelet()
    assert kubelet.prepare([claim]).claims[claim[1]].error == ""
    _killed_by(lambda: kubelet.unprepare([claim], timeout_s=0), plugin)
    assert plugin.checkpoint_claims() == {}
    plugin.start()
    assert kubelet.prepare([claim]).claims[claim[1]].error == "", plugin.logs()
    assert plugin.cdi_files() == spec
    assert kubelet.unprepare([claim]).claims[claim[1]].error == ""
    _assert_clean(plugin)
    kubelet.close()


def _prepare_then_clean_up(plugin: PluginProcess, kubelet: FakeKubelet, claim: tuple[str, str, str]) -> None:
    """After a restart: the claim prepares with everything it needs, and unprepares leaving nothing behind."""
    response = kubelet.prepare([claim])
    assert response.claims[claim[1]].error == "", plugin.logs()
    _assert_prepared(plugin, claim[1])
    assert kubelet.unprepare([claim]).claims[claim[1]].error == ""
    _assert_clean(plugin)
    kubelet.close()
