"""A node leaves the host as it found it: no folder under /var/lib/kubelet, /var/log or /usr/libexec, the three
sysctls the kubelet likes to write unchanged, no mount, no process, and its own folder gone."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.e2e.hostcheck import snapshot
from tests.e2e.kube import Kube
from tests.e2e.kubelet.conftest import CANNOT_RUN, MakeNode, kubelet_unavailable
from tests.e2e.kubelet.pods import CLASSES, claim_pod, claim_template, delete_and_wait_gone, wait_running

pytestmark = [pytest.mark.testbed, pytest.mark.kubelet]


def test_a_node_with_a_running_pod_leaves_no_trace(
    node_kube: Kube, make_node: MakeNode, mixed_classes: list[str], node_namespace: str
) -> None:
    before = snapshot()
    node = make_node()
    node_kube.create(claim_template(node_namespace, "mig", CLASSES["mig"]))
    node_kube.create(claim_pod(node_namespace, "pod", node.name, "mig"))
    wait_running(node_kube, node_namespace, "pod")
    # Inside its namespace the kubelet did write the fixed paths; the host must not see them.
    assert (node.root / "ns" / "overlay-0-upper" / "kubelet").is_dir(), "no /var/lib/kubelet in its namespace?"
    during = snapshot(marker=str(node.root))
    assert before.differences(during), "the node's processes should be visible while it runs"
    delete_and_wait_gone(node_kube, node_namespace, "pod")
    node.close()
    after = snapshot(marker=str(node.root))
    assert before.differences(after) == []
    assert not node.root.exists()


def test_without_root_or_unshare_the_kubelet_tests_skip_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert kubelet_unavailable() == "the tests do not run as root"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "unshare" else f"/usr/bin/{name}")
    assert kubelet_unavailable() == "the unshare command is not installed"
    assert "NONE of the `kubelet` tests ran" in CANNOT_RUN.format(why="x")
