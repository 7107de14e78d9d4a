"""Fixtures for the end-to-end tests against a real Kubernetes control plane.

``testbed_bin`` builds (or reuses) etcd, kube-apiserver, kube-scheduler, kube-controller-manager and helm with
``scripts/build-testbed``; ``kube_cluster`` starts etcd and kube-apiserver on loopback for the whole session;
``kube_scheduler`` and ``kube_controller_manager`` add the scheduler (DynamicResources plugin) and the
resource-claim controller on demand. Everything is killed and the temporary folder removed at the end, also
when a start fails half-way. The tests skip only when Go itself is absent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.controlplane import (
    ControlPlane,
    Process,
    TestbedError,
    build_testbed,
    control_plane,
    start_controller_manager,
    start_scheduler,
)
from tests.e2e.kube import Kube, Obj, create_namespace

# A cold build on a 2-core machine takes about 20 minutes; the test that triggers it gets this long.
BUILD_TIMEOUT_S = 45 * 60
GO_MISSING = (
    "TESTBED SKIPPED: the Go toolchain ('go') is not on PATH, so the real Kubernetes control plane "
    "(etcd, kube-apiserver, kube-scheduler) cannot be built and NONE of the end-to-end tests ran. "
    "Install Go >= 1.26 to run them."
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The first test-bed test may pay for the cold build: give it the build's time on top of the default."""
    for item in items:
        if "testbed_bin" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT_S + 600))
            return


_go_missing: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Repeat the reason once, in a section of its own, so a skipped test bed cannot go unnoticed in CI logs."""
    if _go_missing:
        terminalreporter.section("gpupolicy test bed", sep="!", red=True, bold=True)
        terminalreporter.write_line(GO_MISSING, red=True, bold=True)


@pytest.fixture(scope="session")
def testbed_bin() -> Path:
    """The folder holding the test bed's binaries (``GPUPOLICY_TESTBED_BIN`` overrides the build)."""
    override = os.environ.get("GPUPOLICY_TESTBED_BIN")
    if override:
        return Path(override)
    if shutil.which(os.environ.get("GO", "go")) is None:
        _go_missing.append(GO_MISSING)
        pytest.skip(GO_MISSING)
    try:
        return build_testbed(BUILD_TIMEOUT_S)
    except TestbedError as exc:
        pytest.fail(str(exc), pytrace=False)


@contextlib.contextmanager
def fresh_plane(testbed_bin: Path, prefix: str) -> Iterator[ControlPlane]:
    """A control plane in a new temporary folder (removed afterwards); a start that fails, or a
    ``TestbedError`` in the ``with`` body (a component started on top), fails the test with the logs."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with control_plane(testbed_bin, workdir) as plane:
            yield plane
    except TestbedError as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def kube_cluster(testbed_bin: Path) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver on loopback, DRA gates on, admin kubeconfig at ``.kubeconfig``."""
    with fresh_plane(testbed_bin, "gpupolicy-testbed-") as plane:
        yield plane


@pytest.fixture(scope="session")
def kube_scheduler(kube_cluster: ControlPlane) -> Process:
    """A real kube-scheduler (DynamicResources enabled) against the session's apiserver; stopped with it."""
    try:
        return start_scheduler(kube_cluster)
    except TestbedError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def kube_controller_manager(kube_cluster: ControlPlane) -> Process:
    """kube-controller-manager with only the resource-claim controller (claims from claim templates)."""
    try:
        return start_controller_manager(kube_cluster)
    except TestbedError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def kube_session(kube_cluster: ControlPlane) -> Iterator[Kube]:
    kube = Kube.connect(
        kube_cluster.server, kube_cluster.token, kube_cluster.ca_file, kube_cluster.workdir / "discovery.json"
    )
    yield kube
    kube.close()


class Cleanup:
    """Objects a test created; deleted (newest first) when the test ends, so tests do not see each other's."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.objs: list[Obj] = []

    def create(self, obj: Obj) -> Obj:
        created = self.kube.create(obj)
        self.objs.append(created)
        return created

    def track(self, obj: Obj) -> Obj:
        self.objs.append(obj)
        return obj

    def run(self) -> None:
        self.kube.delete_all(reversed(self.objs))


@pytest.fixture
def kube(kube_session: Kube) -> Iterator[Kube]:
    yield kube_session


@pytest.fixture
def cleanup(kube_session: Kube) -> Iterator[Cleanup]:
    tracker = Cleanup(kube_session)
    yield tracker
    tracker.run()


@pytest.fixture
def namespace(kube_session: Kube) -> Iterator[str]:
    """A fresh namespace with its ``default`` ServiceAccount (no controller manager creates it here)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    create_namespace(kube_session, name)
    yield name
    kube_session.delete("v1", "Namespace", name)
