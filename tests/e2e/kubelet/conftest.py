"""Fixtures for the tests with a real kubelet: a control plane of their own (the node-lifecycle controller they need
would taint the fake, never-ready Nodes of the other test-bed tests), the real scheduler and controller manager,
and ``make_node`` to start nodes (kubelet + CRI stand-in + plugin) that are stopped by PID at the end.

The kubelet needs root (mount namespace, bind mounts over /proc/sys) and ``unshare``; without them every test here
skips with one loud message, as the control-plane tests do without Go.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpupolicy.policy.k8s.dump import to_wire
from gpupolicy.policy.policyfile.compile import load_policy
from tests.e2e.conftest import fresh_plane
from tests.e2e.controlplane import (
    ControlPlane,
    start_controller_manager,
    start_scheduler,
)
from tests.e2e.hostcheck import snapshot
from tests.e2e.kube import Kube, KubeError, create_namespace
from tests.e2e.node import KubeletNode, NodeError
from tests.e2e.pluginproc import MIXED_POLICY, SIM_8XH100
from tests.e2e.test_plugin_publish import DRIVER

SHARING_POLICY = Path(__file__).resolve().parents[1] / "data" / "sharing-h100-policy.yaml"

CONTROLLERS = (
    "resourceclaim-controller",  # claims from templates
    "node-lifecycle-controller",  # removes the not-ready taint of a Ready node
    "daemonset-controller",  # the Helm chart's plugin pod
    "root-ca-certificate-publisher-controller",  # kube-root-ca.crt, for pods' service-account token volumes
    "garbage-collector-controller",  # slices owned by a deleted Node
    "disruption-controller",  # PodDisruptionBudgets' status, which the Eviction API reads (preemption tests)
    "replicaset-controller",  # a movable pod that comes back after it is moved (defragmentation test)
)
CANNOT_RUN = (
    "KUBELET TESTS SKIPPED: {why}, so the real kubelet cannot run in a private mount namespace and NONE of the "
    "`kubelet` tests ran. Run the suite as root on Linux with util-linux's unshare."
)

_skipped: list[str] = []


def kubelet_unavailable() -> str | None:
    if os.name != "posix" or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the tests do not run as root"
    if shutil.which("unshare") is None:
        return "the unshare command is not installed"
    return None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped:
        terminalreporter.section("gpupolicy kubelet node", sep="!", red=True, bold=True)
        terminalreporter.write_line(_skipped[0], red=True, bold=True)


@pytest.fixture(scope="session")
def host_guard() -> Iterator[None]:
    """The host before the first node and after the last: any difference (a folder under /var/lib/kubelet,
    /var/log or /usr/libexec, a sysctl, a mount, a kubelet or CRI stand-in still running) is an error."""
    why = kubelet_unavailable()
    if why is not None:
        message = CANNOT_RUN.format(why=why)
        _skipped.append(message)
        pytest.skip(message)
    before = snapshot()
    yield
    left = before.differences(snapshot())
    assert not left, "the kubelet tests changed the host:\n" + "\n".join(left)


@pytest.fixture(scope="session")
def node_plane(testbed_bin: Path, host_guard: None) -> Iterator[ControlPlane]:
    """A control plane for the kubelet tests only, with scheduler and controller manager."""
    for name in ("kubelet", "cri-standin"):
        if not (testbed_bin / name).exists():
            pytest.fail(f"{testbed_bin / name} is missing: scripts/build-testbed builds it", pytrace=False)
    with fresh_plane(testbed_bin, "gpupolicy-node-plane-") as plane:
        start_scheduler(plane)
        start_controller_manager(plane, CONTROLLERS)
        yield plane


@pytest.fixture(scope="session")
def node_kube(node_plane: ControlPlane) -> Iterator[Kube]:
    kube = Kube.connect(node_plane.server, node_plane.token, node_plane.ca_file, node_plane.workdir / "disc.json")
    yield kube
    kube.close()


def install_classes(kube: Kube, policy: Path) -> list[str]:
    """The policy's DeviceClasses, applied; their names."""
    names = []
    for device_class in load_policy(policy.read_text(), str(policy)).device_classes:
        kube.apply(to_wire(device_class))
        names.append(device_class.name)
    return names


@pytest.fixture(scope="session")
def mixed_classes(node_kube: Kube) -> list[str]:
    """The mixed policy's DeviceClasses (whole GPU, dynamic MIG 1g, shares), installed once."""
    return install_classes(node_kube, MIXED_POLICY)


@pytest.fixture(scope="session")
def sharing_classes(node_kube: Kube) -> list[str]:
    """The sharing policy's DeviceClasses (time-sliced, MPS), installed once."""
    return install_classes(node_kube, SHARING_POLICY)


MakeNode = Callable[..., KubeletNode]


@pytest.fixture
def make_node(node_plane: ControlPlane, node_kube: Kube) -> Iterator[MakeNode]:
    """``make_node(policy=..., nvml=..., start=True, plugin_env=None)``: a started node, Ready, plugin
    registered (``start=False``: nothing started yet). Every node is stopped (plugin, kubelet, runtime, by PID)
    and its Node and slices deleted at the end."""
    nodes: list[KubeletNode] = []

    def make(
        policy: Path = MIXED_POLICY,
        nvml: str = SIM_8XH100,
        *,
        prefix: str = "node",
        start: bool = True,
        plugin_env: dict[str, str] | None = None,
    ) -> KubeletNode:
        node = KubeletNode(node_plane, f"{prefix}-{uuid.uuid4().hex[:6]}", policy, nvml=nvml)
        node.plugin.env = dict(plugin_env or {})
        nodes.append(node)
        if start:
            try:
                node.start(node_kube, DRIVER)
            except NodeError as exc:
                pytest.fail(str(exc), pytrace=False)
        return node

    yield make
    for node in nodes:
        node.remove(node_kube)


@pytest.fixture
def node_namespace(node_kube: Kube) -> Iterator[str]:
    """A fresh namespace on the node plane; deleted (with its pods) at the end."""
    name = f"k-{uuid.uuid4().hex[:8]}"
    create_namespace(node_kube, name)
    yield name
    with contextlib.suppress(KubeError):
        node_kube.delete("v1", "Namespace", name)
