"""Scenario 6: the Helm chart under ``deploy/helm/gpupolicy`` renders (helm built from Go modules by the test bed)
for every example policy, and the real API server accepts every object with a server-side dry-run apply. Its RBAC
and admission policy really confine the plugin: it reads claims, writes only its own node's ResourceSlices of its
own driver, and nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.controlplane import ControlPlane
from tests.e2e.examples import Example, examples
from tests.e2e.helm import HelmError, helm_lint, helm_template
from tests.e2e.kube import Kube, KubeError, Obj
from tests.plugin.kubelet.api_calls import Permission, granted, used_permissions

pytestmark = pytest.mark.testbed

EXAMPLES = examples()
RELEASE = "gpupolicy"
CHART_KINDS = {
    "ConfigMap",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "DaemonSet",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "DeviceClass",
}
PLUGIN_IDENTITY = ("ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                   "ValidatingAdmissionPolicyBinding")  # fmt: skip
NODE_EXTRA = "Impersonate-Extra-authentication.kubernetes.io%2fnode-name"


@pytest.fixture(scope="module")
def helm(testbed_bin: Path) -> Path:
    return testbed_bin / "helm"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def chart_values(example: Example) -> dict[str, Any]:
    return {
        "driverName": example.driver(),
        "policy": example.policy_file().read_text(),
    }


def by_kind(objects: list[Obj]) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for obj in objects:
        out.setdefault(obj["kind"], []).append(obj)
    return out


def test_chart_lints_strictly(helm: Path, workdir: Path) -> None:
    helm_lint(helm, chart_values(EXAMPLES[0]), workdir)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_chart_renders_the_policy_and_applies_with_server_dry_run(
    kube: Kube, helm: Path, workdir: Path, namespace: str, example: Example
) -> None:
    objects = helm_template(helm, RELEASE, namespace, chart_values(example), workdir)
    kinds = by_kind(objects)
    assert set(kinds) == CHART_KINDS
    config = kinds["ConfigMap"][0]
    assert config["data"]["policy.yaml"].strip() == example.policy_file().read_text().strip()
    assert [c["spec"] for c in kinds["DeviceClass"]] == [c["spec"] for c in example.device_classes()]
    args = kinds["DaemonSet"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--driver-name={example.driver()}" in args
    for obj in objects:
        applied = kube.apply(obj, dry_run=True, namespace=namespace)
        assert applied["metadata"]["name"] == obj["metadata"]["name"]
    assert kube.list("apps/v1", "DaemonSet", namespace) == [], "dry run must not store anything"


def test_daemonset_mounts_the_kubelet_paths(helm: Path, workdir: Path) -> None:
    objects = helm_template(helm, RELEASE, "gpupolicy-system", chart_values(EXAMPLES[0]), workdir)
    pod = by_kind(objects)["DaemonSet"][0]["spec"]["template"]["spec"]
    # the host's NVIDIA driver libraries (plugin.nvmlFrom: driverRoot, the default), read-only
    host_paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    driver = EXAMPLES[0].driver()
    assert host_paths == {
        f"/var/lib/kubelet/plugins/{driver}",
        "/var/lib/kubelet/plugins_registry",
        "/var/run/cdi",
        "/dev",
        "/",
    }
    [driver_root] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "driver-root"]
    assert driver_root == {"name": "driver-root", "mountPath": "/driver-root", "readOnly": True}
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in pod["containers"][0]["env"]}
    assert env["NODE_NAME"] == "spec.nodeName"
    # the image runs as a non-root user by default; the plugin needs root for NVML, MIG and the host paths
    security = pod["containers"][0]["securityContext"]
    assert security["privileged"] is True and security["runAsUser"] == 0 and security["runAsGroup"] == 0


def test_missing_policy_is_a_render_error(helm: Path, workdir: Path) -> None:
    values = chart_values(EXAMPLES[0])
    values["policy"] = ""
    with pytest.raises(HelmError, match="policy is required"):
        helm_template(helm, RELEASE, "gpupolicy-system", values, workdir)


def test_a_driver_name_other_than_the_policys_is_a_render_error(helm: Path, workdir: Path) -> None:
    values = chart_values(EXAMPLES[0])
    values["driverName"] = "other.example.com"
    with pytest.raises(HelmError, match=r"differs from the policy's spec\.driverName"):
        helm_template(helm, RELEASE, "gpupolicy-system", values, workdir)


def test_extra_device_classes_come_after_the_policys(helm: Path, workdir: Path) -> None:
    values = chart_values(EXAMPLES[0])
    extra = {"name": "extra.gpupolicy.dev", "spec": {"selectors": [{"cel": {"expression": "true"}}]}}
    values["deviceClasses"] = [extra]
    classes = by_kind(helm_template(helm, RELEASE, "gpupolicy-system", values, workdir))["DeviceClass"]
    names = [c["metadata"]["name"] for c in classes]
    assert names == [c["metadata"]["name"] for c in EXAMPLES[0].device_classes()] + ["extra.gpupolicy.dev"]
    assert classes[-1]["spec"] == extra["spec"]


def test_policy_that_is_not_yaml_is_a_render_error(helm: Path, workdir: Path) -> None:
    values = chart_values(EXAMPLES[0])
    values["policy"] = "spec: [unclosed"
    with pytest.raises(HelmError, match="policy is not valid YAML"):
        helm_template(helm, RELEASE, "gpupolicy-system", values, workdir)


# --- the plugin's identity, installed for real --------------------------------------------------------------


@pytest.fixture
def installed(kube: Kube, helm: Path, workdir: Path, namespace: str) -> Iterator[tuple[str, str]]:
    """The chart's identity objects applied for real (not the DaemonSet: there is no kubelet to run it).
    Yields (release namespace, driver)."""
    example = EXAMPLES[0]
    objects = helm_template(helm, RELEASE, namespace, chart_values(example), workdir)
    wanted = [o for o in objects if o["kind"] in PLUGIN_IDENTITY]
    for obj in wanted:
        kube.apply(obj, namespace=namespace)
    yield namespace, example.driver()
    for obj in reversed(wanted):
        meta = obj["metadata"]
        kube.delete(obj["apiVersion"], obj["kind"], meta["name"], namespace if "namespace" in meta else None)


def as_plugin(plane: ControlPlane, namespace: str, node: str | None) -> Kube:
    headers = {"Impersonate-User": f"system:serviceaccount:{namespace}:{RELEASE}"}
    if node is not None:
        headers[NODE_EXTRA] = node
    cache = plane.workdir / f"discovery-{uuid.uuid4().hex[:6]}.json"
    return Kube.connect(plane.server, plane.token, plane.ca_file, cache, headers)


def slice_for(node: str, driver: str) -> Obj:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{node}-{uuid.uuid4().hex[:6]}"},
        "spec": {
            "driver": driver,
            "nodeName": node,
            "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
            "devices": [{"name": "gpu-0", "attributes": {"type": {"string": "gpu"}}}],
        },
    }


def denied(kube: Kube, obj: Obj) -> KubeError | None:
    try:
        kube.create(obj, dry_run=True)
    except KubeError as err:
        return err
    return None


def test_plugin_writes_only_its_own_nodes_slices(kube_cluster: ControlPlane, installed: tuple[str, str]) -> None:
    namespace, driver = installed
    on_a = as_plugin(kube_cluster, namespace, "node-a")
    try:
        # The admission policy becomes active asynchronously; wait until it bites.
        err = on_a.wait_for(
            "the admission policy to deny node-b's slice", lambda: denied(on_a, slice_for("node-b", driver))
        )
        assert err.status in (403, 422)
        assert "may not modify ResourceSlices of node 'node-b'" in err.message
        created = on_a.create(slice_for("node-a", driver))
        on_a.delete("resource.k8s.io/v1", "ResourceSlice", created["metadata"]["name"])
        other_driver = denied(on_a, slice_for("node-a", "gpu.nvidia.com"))
        assert other_driver is not None and "may only publish for driver" in other_driver.message
    finally:
        on_a.close()


def test_plugin_without_a_node_cannot_write_slices(kube_cluster: ControlPlane, installed: tuple[str, str]) -> None:
    namespace, driver = installed
    nowhere = as_plugin(kube_cluster, namespace, None)
    try:
        err = nowhere.wait_for("the admission policy to deny", lambda: denied(nowhere, slice_for("node-a", driver)))
        assert "no node name in its token" in err.message
    finally:
        nowhere.close()


def names(objs: list[Obj]) -> set[tuple[str, str]]:
    return {(o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs}


def test_plugin_reads_claims_but_nothing_more(
    kube: Kube, kube_cluster: ControlPlane, installed: tuple[str, str]
) -> None:
    namespace, _ = installed
    plugin = as_plugin(kube_cluster, namespace, "node-a")
    try:
        seen = names(plugin.list("resource.k8s.io/v1", "ResourceClaim"))
        assert seen == names(kube.list("resource.k8s.io/v1", "ResourceClaim")), "reads every namespace's claims"
        pod = {"containers": [{"name": "c", "image": "x"}]}
        for forbidden in (
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": namespace}, "spec": pod},
            {
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceClaim",
                "metadata": {"name": "x", "namespace": namespace},
                "spec": {"devices": {"requests": []}},
            },
            {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": "x"}, "spec": {}},
        ):
            err = denied(plugin, forbidden)
            assert err is not None and err.status == 403, forbidden["kind"]
        with pytest.raises(KubeError) as secrets:
            plugin.list("v1", "Secret", namespace)
        assert secrets.value.status == 403
    finally:
        plugin.close()


UNUSED: set[Permission] = {  # granted by earlier charts; no code of the plugin asks for them
    ("resource.k8s.io", "deviceclasses", "get"),
    ("resource.k8s.io", "deviceclasses", "list"),
    ("resource.k8s.io", "deviceclasses", "watch"),
    ("resource.k8s.io", "resourceclaims", "watch"),
    ("resource.k8s.io", "resourceslices", "get"),
    ("resource.k8s.io", "resourceslices", "patch"),
    ("resource.k8s.io", "resourceslices", "deletecollection"),
    ("", "events", "patch"),
    ("events.k8s.io", "events", "create"),
    ("events.k8s.io", "events", "patch"),
}


def test_the_chart_grants_exactly_what_the_plugin_uses(
    kube: Kube, helm: Path, workdir: Path, installed: tuple[str, str]
) -> None:
    """The rendered ClusterRole against the requests the plugin's code makes (tests/plugin/kubelet/api_calls.py),
    and the real API server's authorizer asked about each of them and about what earlier charts granted too."""
    namespace, _ = installed
    used = set().union(*used_permissions(workdir).values())
    roles = by_kind(helm_template(helm, RELEASE, namespace, chart_values(EXAMPLES[0]), workdir))["ClusterRole"]
    [role] = [r for r in roles if r["metadata"]["name"] == RELEASE]
    assert granted(role["rules"]) == used
    assert not used & UNUSED

    def allowed(permission: Permission) -> bool:
        group, resource, verb = permission
        attributes = {"group": group, "resource": resource, "verb": verb}
        if resource in ("resourceclaims", "events"):
            attributes["namespace"] = "default"
        review = kube.create(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": f"system:serviceaccount:{namespace}:{RELEASE}",
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
                    "resourceAttributes": attributes,
                },
            }
        )
        return bool(review.get("status", {}).get("allowed"))

    kube.wait_for("the chart's ClusterRole to take effect", lambda: all(allowed(p) for p in used))
    assert {p for p in UNUSED if allowed(p)} == set()
