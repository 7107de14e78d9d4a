"""The whole path: a gated pod's claim allocated by the controller from the slices our plugin publishes for a simulated
8×H100 node, bound by the real scheduler, then prepared by the plugin through a kubelet stand-in over its socket: the
plugin receives exactly the devices the controller chose."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.controller.conftest import Driven, bound, gated_pod, gates, pod_claims, template
from tests.e2e.kube import Kube
from tests.e2e.pluginproc import MIXED_POLICY, PluginProcess
from tests.e2e.test_plugin_publish import DRIVER
from tests.e2e.test_schedule_prepare import CLASSES
from tests.plugin.kubelet.kubelet import FakeKubelet

pytestmark = pytest.mark.testbed


def test_the_plugin_prepares_what_the_controller_allocated(
    kube: Kube, namespace: str, gpu_node: PluginProcess, driven: Callable[..., Driven]
) -> None:
    kube.create(template(namespace, "mig", CLASSES["mig"]))
    kube.create(template(namespace, "whole", CLASSES["whole"]))
    kube.create(gated_pod(namespace, "job", ["mig", "whole"]))
    ctl = driven(policy=MIXED_POLICY)
    ctl.until("the pod to be placed", lambda: not gates(kube, namespace, "job"))
    kube.wait_for("the pod to be bound", lambda: bound(kube, namespace, "job"))
    assert bound(kube, namespace, "job") == gpu_node.node

    claims = pod_claims(kube, namespace, "job")
    assert len(claims) == 2 and all(c["status"].get("reservedFor") for c in claims)
    kubelet = FakeKubelet(gpu_node.registry_dir, DRIVER)
    try:
        refs = [(namespace, c["metadata"]["uid"], c["metadata"]["name"]) for c in claims]
        prepared = kubelet.prepare(refs)
        for claim in claims:
            answer = prepared.claims[claim["metadata"]["uid"]]
            assert answer.error == ""
            got = sorted((d.pool_name, d.device_name) for d in answer.devices)
            allocated = claim["status"]["allocation"]["devices"]["results"]
            assert got == sorted((r["pool"], r["device"]) for r in allocated)
            assert all(d.cdi_device_ids for d in answer.devices)
        devices = [d.device_name for c in prepared.claims.values() for d in c.devices]
        assert sum("-mig-1g10gb-" in d for d in devices) == 1, devices
        assert sum("-mig-" not in d for d in devices) == 1, devices
        kubelet.unprepare(refs)
    finally:
        kubelet.close()
