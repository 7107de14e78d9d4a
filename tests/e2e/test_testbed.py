"""The test bed itself: the pinned control plane runs, serves resource.k8s.io/v1 with the DRA gates on, and the
scheduler and claim controller do their jobs on fake Nodes (the ground the scenario tests stand on)."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import Cleanup
from tests.e2e.controlplane import DRA_GATES, ControlPlane, Process
from tests.e2e.kube import Kube, KubeError, create_node, enabled_features

pytestmark = pytest.mark.testbed

PINNED_MINOR = "37"


def test_apiserver_is_the_pinned_release(kube: Kube) -> None:
    version = kube.raw("GET", "/version")
    assert (version["major"], version["minor"]) == ("1", PINNED_MINOR)


def test_dra_feature_gates_are_on(kube: Kube) -> None:
    gates = enabled_features(kube)
    assert {gate: gates.get(gate) for gate in DRA_GATES} == dict.fromkeys(DRA_GATES, True)


def test_resource_v1_is_served(kube: Kube) -> None:
    resources = {r["name"] for r in kube.raw("GET", "/apis/resource.k8s.io/v1")["resources"]}
    assert {"deviceclasses", "resourceclaims", "resourceclaimtemplates", "resourceslices"} <= resources


def test_start_is_recorded(kube_cluster: ControlPlane) -> None:
    assert 0 < kube_cluster.start_seconds < 60
    assert kube_cluster.kubeconfig.read_text().count(kube_cluster.server) == 1


def test_invalid_slice_is_rejected_with_the_servers_reason(kube: Kube) -> None:
    bad = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": "bad-slice"},
        "spec": {
            "driver": "gpu.example.com",
            "nodeName": "nowhere",
            "pool": {"name": "p", "generation": 0, "resourceSliceCount": 1},
            "devices": [{"name": "Not_A_DNS_Label"}],
        },
    }
    with pytest.raises(KubeError) as err:
        kube.create(bad, dry_run=True)
    assert err.value.status == 422
    assert "spec.devices[0].name" in err.value.message


def test_fake_node_is_ready_with_capacity(kube: Kube, cleanup: Cleanup) -> None:
    name = f"fake-{uuid.uuid4().hex[:6]}"
    cleanup.track(create_node(kube, name, cpu="8", memory="32Gi"))
    node = kube.get("v1", "Node", name)
    assert node["status"]["allocatable"]["cpu"] == "8"
    assert [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"] == ["True"]


def test_scheduler_binds_a_plain_pod_to_a_fake_node(
    kube: Kube, cleanup: Cleanup, namespace: str, kube_scheduler: Process
) -> None:
    node = f"fake-{uuid.uuid4().hex[:6]}"
    cleanup.track(create_node(kube, node, labels={"e2e": node}))
    pod = cleanup.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "plain", "namespace": namespace},
            "spec": {
                "nodeSelector": {"e2e": node},
                "containers": [{"name": "c", "image": "registry.invalid/none:0"}],
            },
        }
    )
    bound = kube.wait_for(
        "the pod to be bound",
        lambda: kube.get("v1", "Pod", pod["metadata"]["name"], namespace)["spec"].get("nodeName"),
    )
    assert bound == node


def test_claim_controller_creates_claims_from_templates(
    kube: Kube, cleanup: Cleanup, namespace: str, kube_controller_manager: Process
) -> None:
    cleanup.create(
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "DeviceClass",
            "metadata": {"name": f"e2e-{namespace}"},
            "spec": {"selectors": [{"cel": {"expression": 'device.driver == "gpu.example.com"'}}]},
        }
    )
    cleanup.create(
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaimTemplate",
            "metadata": {"name": "one-gpu", "namespace": namespace},
            "spec": {
                "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": f"e2e-{namespace}"}}]}}
            },
        }
    )
    cleanup.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "wants-gpu", "namespace": namespace},
            "spec": {
                "schedulerName": "nobody",  # keep it pending: this test is about the controller only
                "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}],
                "containers": [
                    {"name": "c", "image": "registry.invalid/none:0", "resources": {"claims": [{"name": "gpu"}]}}
                ],
            },
        }
    )
    claims = kube.wait_for(
        "the claim generated from the template", lambda: kube.list("resource.k8s.io/v1", "ResourceClaim", namespace)
    )
    assert [c["metadata"]["ownerReferences"][0]["name"] for c in claims] == ["wants-gpu"]
    assert claims[0]["spec"]["devices"]["requests"][0]["exactly"]["deviceClassName"] == f"e2e-{namespace}"


def admin_claim(namespace: str) -> dict[str, object]:
    request = {"name": "all", "exactly": {"deviceClassName": "any", "adminAccess": True, "allocationMode": "All"}}
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": "monitor", "namespace": namespace},
        "spec": {"devices": {"requests": [request]}},
    }


def test_admin_access_needs_an_admin_namespace(kube: Kube, cleanup: Cleanup, namespace: str) -> None:
    """DRAAdminAccess is live: adminAccess claims only in namespaces labelled for it."""
    with pytest.raises(KubeError) as err:
        kube.create(admin_claim(namespace), dry_run=True)
    assert "resource.kubernetes.io/admin-access" in err.value.message
    admin_ns = f"{namespace}-admin"
    cleanup.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": admin_ns, "labels": {"resource.kubernetes.io/admin-access": "true"}},
        }
    )
    created = kube.create(admin_claim(admin_ns), dry_run=True)
    assert created["spec"]["devices"]["requests"][0]["exactly"]["adminAccess"] is True


def test_prioritized_list_and_capacity_requests_are_kept(kube: Kube, namespace: str) -> None:
    """DRAPrioritizedList and DRAConsumableCapacity are live: the server keeps firstAvailable and capacity."""
    claim = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": "flexible", "namespace": namespace},
        "spec": {
            "devices": {
                "requests": [
                    {
                        "name": "gpu",
                        "firstAvailable": [
                            {"name": "big", "deviceClassName": "a", "capacity": {"requests": {"memory": "40Gi"}}},
                            {"name": "small", "deviceClassName": "b"},
                        ],
                    }
                ]
            }
        },
    }
    echoed = kube.create(claim, dry_run=True)
    subrequests = echoed["spec"]["devices"]["requests"][0]["firstAvailable"]
    assert [s["name"] for s in subrequests] == ["big", "small"]
    assert subrequests[0]["capacity"] == {"requests": {"memory": "40Gi"}}
