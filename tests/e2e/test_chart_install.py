"""The one chart, ``helm install``-ed into the test bed's real API server: a bad value fails the install; the placement
controller, run as the chart's Deployment runs it and with a token of the chart's controller ServiceAccount (no admin
credentials), places a pod that the chart's MutatingAdmissionPolicy gated because its namespace opted in, and the real
scheduler binds it; a pod of another namespace gets no gate and is left to the scheduler; without the chart's Lease
permission the controller fails.

There is no kubelet here, so the Deployment's pods do not run: the test starts ``gpupolicy controller run`` with the
Deployment's own arguments (the plugin's half on a real kubelet node is tests/e2e/kubelet/test_helm_node.py)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.plugin.controller.report import CONDITION
from tests.e2e.conftest import Cleanup
from tests.e2e.controller.conftest import (
    FOUR_G,
    GATE,
    STRANDS_POLICY,
    THREE_G,
    bound,
    devices_in_use,
    gated_pod,
    gates,
    pod_claims,
    template,
)
from tests.e2e.controlplane import REPO, ControlPlane, Process, free_port, write_kubeconfig
from tests.e2e.helm import HelmError, helm_install, helm_releases, helm_template, helm_uninstall, helm_upgrade
from tests.e2e.kube import Kube, KubeError, Obj, create_node
from tests.e2e.recordcalls import recorded_requests
from tests.e2e.test_scheduler_vs_solver import STRANDS, renamed_slices
from tests.plugin.kubelet.api_calls import Permission, granted, permission

pytestmark = pytest.mark.testbed

OPT_IN = {"gpupolicy.dev/placement": "enabled"}


@pytest.fixture(scope="module")
def helm(testbed_bin: Path) -> Path:
    return testbed_bin / "helm"


@dataclass
class Release:
    name: str
    namespace: str
    kubeconfig: Path  # a token of the chart's controller ServiceAccount
    deployment: Obj


def values() -> dict[str, Any]:
    return {
        "driverName": STRANDS.driver(),
        "policy": STRANDS_POLICY.read_text(),
        # No kubelet runs the Deployment's pods; keep them off the fake GPU node the scheduler would bind them to.
        "controller": {"nodeSelector": {"gpupolicy.dev/e2e": "nowhere"}},
    }


def sa_token(kube: Kube, namespace: str, service_account: str) -> str:
    review = kube.raw(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
    )
    return str(review["status"]["token"])


@pytest.fixture
def release(kube: Kube, kube_cluster: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Release]:
    helm = kube_cluster.bin_dir / "helm"
    name = f"gp-{uuid.uuid4().hex[:6]}"
    helm_install(helm, kube_cluster.kubeconfig, name, namespace, values(), tmp_path)
    try:
        [deployment] = kube.list("apps/v1", "Deployment", namespace)
        service_account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        kubeconfig = tmp_path / "controller-kubeconfig"
        token = sa_token(kube, namespace, service_account)
        write_kubeconfig(kubeconfig, kube_cluster.server, kube_cluster.ca_file, token)
        yield Release(name, namespace, kubeconfig, deployment)
    finally:
        helm_uninstall(helm, kube_cluster.kubeconfig, name, namespace, tmp_path)


def controller_argv(release: Release, policy: Path, *extra: str, record: Path | None = None) -> list[str]:
    """The Deployment's container command and arguments, run here: the policy from the chart's ConfigMap written to
    ``policy``, the ServiceAccount's token instead of the in-cluster one, metrics on a free local port."""
    [container] = release.deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["gpupolicy", "controller", "run"]
    args = []
    for arg in container["args"]:
        if arg.startswith("--policy="):
            arg = f"--policy={policy}"
        elif arg.startswith("--metrics-address="):
            arg = f"--metrics-address=127.0.0.1:{free_port()}"
        elif arg == "--identity=$(POD_NAME)":
            arg = "--identity=chart-replica-0"
        args.append(arg)
    runner = ["-m", "tests.e2e.recordcalls", str(record)] if record else ["-m", "gpupolicy.plugin.cli.main"]
    return [sys.executable, *runner, "controller", "run", *args,
            f"--kubeconfig={release.kubeconfig}", *extra]  # fmt: skip


def policy_file(kube: Kube, release: Release, tmp_path: Path) -> Path:
    [config] = [c for c in kube.list("v1", "ConfigMap", release.namespace) if c["metadata"]["name"].endswith("-policy")]
    path = tmp_path / "policy.yaml"
    path.write_text(config["data"]["policy.yaml"])
    return path


def strands_node(kube: Kube, cleanup: Cleanup) -> str:
    """A fake Node with examples/first-fit-strands' H100 pool; its DeviceClasses come from the chart."""
    node = f"h100-{uuid.uuid4().hex[:6]}"
    cleanup.track(create_node(kube, node))
    for obj in renamed_slices(STRANDS.slices(), node):
        cleanup.create(obj)
    return node


def labelled_namespace(kube: Kube, cleanup: Cleanup, labels: dict[str, str]) -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cleanup.track(kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}))
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}})
    return name


def claim_pod(namespace: str, name: str, claim_template: str | None) -> Obj:
    """A pod as a user writes it: no scheduling gate of its own."""
    claims = [{"name": "gpu", "resourceClaimTemplateName": claim_template}] if claim_template else []
    container: Obj = {"name": "c", "image": "registry.invalid/none:0"}
    if claims:
        container["resources"] = {"claims": [{"name": "gpu"}]}
    spec: Obj = {"containers": [container]}
    if claims:
        spec["resourceClaims"] = claims
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def create_gated(kube: Kube, namespace: str, name: str, claim_template: str) -> Obj:
    """Create the pod, retrying until the MutatingAdmissionPolicy (loaded asynchronously) has gated one."""

    def attempt() -> Obj | None:
        created = kube.create(claim_pod(namespace, name, claim_template))
        if GATE in [g["name"] for g in created["spec"].get("schedulingGates") or []]:
            return created
        kube.delete("v1", "Pod", name, namespace)
        kube.wait_for("the ungated pod gone", lambda: not _exists(kube, namespace, name))
        return None

    return kube.wait_for("the placement gate added at creation", attempt, timeout_s=30)


def _exists(kube: Kube, namespace: str, name: str) -> bool:
    try:
        kube.get("v1", "Pod", name, namespace)
    except KubeError as err:
        if err.status == 404:
            return False
        raise
    return True


def placement_condition(kube: Kube, namespace: str, pod: str) -> Obj | None:
    conditions = (kube.get("v1", "Pod", pod, namespace).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == CONDITION), None)


def forbidden_lines(log: str) -> list[str]:
    """Requests the API server refused: its 403s read "403 Forbidden: ... is forbidden: User ... cannot ...", its
    422s for a missing synthetic permission "... Forbidden: ... requires ... permission"."""
    # A 403 for writing into a namespace being deleted ("unable to create new content in namespace ... because it
    # is being terminated": another test's namespace, seen by this cluster-wide controller) is not a permission.
    return [
        line
        for line in log.splitlines()
        if "forbidden" in line.lower() and "because it is being terminated" not in line
    ]


def test_a_bad_value_fails_the_install_and_installs_nothing(
    kube: Kube, kube_cluster: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    bad = values()
    bad["controller"] = {"replicas": "two"}
    with pytest.raises(HelmError) as failed:
        helm_install(kube_cluster.bin_dir / "helm", kube_cluster.kubeconfig, "bad", namespace, bad, tmp_path)
    assert "/controller/replicas" in str(failed.value) and "want integer" in str(failed.value)
    assert helm_releases(kube_cluster.bin_dir / "helm", kube_cluster.kubeconfig, namespace, tmp_path) == []
    assert kube.list("apps/v1", "Deployment", namespace) == []


def test_a_value_of_the_old_layout_is_refused_not_ignored(helm: Path, tmp_path: Path) -> None:
    """Before the controller joined, the plugin's values were top-level (``nvml``); they now live under ``plugin``."""
    old = {**values(), "nvml": "sim:8xH100-80GB"}
    with pytest.raises(HelmError, match="additional properties 'nvml' not allowed"):
        helm_template(helm, "old", "gpupolicy-system", old, tmp_path)


@pytest.mark.parametrize(
    ("switch", "gone"),
    [
        (
            {"plugin": {"enabled": False}},
            {"DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
        ),
        ({"controller": {"enabled": False}}, {"Deployment", "Service", "PodDisruptionBudget", "Role", "RoleBinding"}),
        ({"placementOptIn": {"enabled": False}}, {"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"}),
    ],
    ids=["no-plugin", "no-controller", "no-opt-in"],
)
def test_each_component_is_switchable(helm: Path, tmp_path: Path, switch: dict[str, Any], gone: set[str]) -> None:
    every = helm_template(helm, "r", "gpupolicy-system", values(), tmp_path)
    some = helm_template(helm, "r", "gpupolicy-system", {**values(), **switch}, tmp_path)
    assert {o["kind"] for o in every} - {o["kind"] for o in some} == gone
    names = {(o["kind"], o["metadata"]["name"]) for o in some}
    assert ("ConfigMap", "r-gpupolicy-policy") in names, "the policy stays: the other component reads it"
    left = {o["metadata"]["name"] for o in some if o["kind"] in ("ServiceAccount", "ClusterRole")}
    component = "controller" if "controller" in switch else "plugin" if "plugin" in switch else None
    if component == "controller":
        assert left == {"r-gpupolicy"}
    elif component == "plugin":
        assert left == {"r-gpupolicy-controller"}


def test_the_chart_installs_two_leader_electing_replicas_with_their_own_identity(kube: Kube, release: Release) -> None:
    spec = release.deployment["spec"]
    assert spec["replicas"] == 2
    args = spec["template"]["spec"]["containers"][0]["args"]
    assert f"--lease-namespace={release.namespace}" in args and "--identity=$(POD_NAME)" in args
    assert "--no-leader-election" not in args
    controller_sa = spec["template"]["spec"]["serviceAccountName"]
    [daemonset] = kube.list("apps/v1", "DaemonSet", release.namespace)
    assert daemonset["spec"]["template"]["spec"]["serviceAccountName"] != controller_sa
    [pdb] = kube.list("policy/v1", "PodDisruptionBudget", release.namespace)
    assert pdb["spec"]["minAvailable"] == 1
    [service] = kube.list("v1", "Service", release.namespace)
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert service["spec"]["selector"] != daemonset["spec"]["selector"]["matchLabels"]


def test_opted_in_pod_is_gated_and_placed_by_the_controller_with_the_charts_token_others_left_to_the_scheduler(
    kube: Kube,
    cleanup: Cleanup,
    release: Release,
    kube_scheduler: Process,
    kube_controller_manager: Process,
    tmp_path: Path,
) -> None:
    node = strands_node(kube, cleanup)
    opted_in = labelled_namespace(kube, cleanup, OPT_IN)
    elsewhere = labelled_namespace(kube, cleanup, {})
    for ns in (opted_in, elsewhere):
        kube.create(template(ns, "three", THREE_G))

    created = create_gated(kube, opted_in, "placed", "three")
    assert [g["name"] for g in created["spec"]["schedulingGates"]] == [GATE]
    no_claims = kube.create(claim_pod(opted_in, "no-claims", None))
    assert not no_claims["spec"].get("schedulingGates"), "a pod without claims is not the controller's"
    ungated = kube.create(claim_pod(elsewhere, "scheduled", "three"))
    assert not ungated["spec"].get("schedulingGates"), "a namespace that did not opt in is left to the scheduler"

    log = tmp_path / "controller.log"
    requests = tmp_path / "requests.jsonl"
    policy = policy_file(kube, release, tmp_path)
    argv = controller_argv(release, policy, "--batch-window=0.3", "--resync=2", record=requests)
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            kube.wait_for("the opted-in pod placed and bound", lambda: bound(kube, opted_in, "placed"), timeout_s=90)
        except AssertionError as exc:
            state = kube.get("v1", "Pod", "placed", opted_in).get("status")
            raise AssertionError(f"{exc}\npod: {state}\ncontroller:\n{log.read_text()[-4000:]}") from None
        assert gates(kube, opted_in, "placed") == [], "only the controller removes its gate"
        assert bound(kube, opted_in, "placed") == node
        [claim] = pod_claims(kube, opted_in, "placed")
        assert claim["status"]["allocation"]["devices"]["results"]

        # Two 4g slices do not fit one H100: the controller says why on the pod (condition and Event).
        kube.create(template(opted_in, "four", FOUR_G))
        two = claim_pod(opted_in, "unplaceable", "four")
        two["spec"]["resourceClaims"].append({"name": "gpu2", "resourceClaimTemplateName": "four"})
        two["spec"]["containers"][0]["resources"]["claims"].append({"name": "gpu2"})
        assert [g["name"] for g in kube.create(two)["spec"]["schedulingGates"]] == [GATE]
        why = kube.wait_for("a condition on the pod", lambda: placement_condition(kube, opted_in, "unplaceable"))
        assert why["status"] == "False" and why["reason"] != "Placed"
        kube.wait_for(
            "a FailedPlacement Event",
            lambda: [e for e in kube.list("v1", "Event", opted_in) if e.get("reason") == "FailedPlacement"],
        )
        kube.wait_for("the other pod bound by the scheduler", lambda: bound(kube, elsewhere, "scheduled"), 60)
        other = kube.get("v1", "Pod", "scheduled", elsewhere)
        assert CONDITION not in [c["type"] for c in other["status"].get("conditions") or []]
        [lease] = kube.list("coordination.k8s.io/v1", "Lease", release.namespace)
        assert lease["spec"]["holderIdentity"] == "chart-replica-0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert forbidden_lines(text) == [], "the chart's RBAC refused a request of the controller:\n" + text[-3000:]
    assert_grants_what_was_used(kube, release, recorded_requests(requests))


RE_READS: set[Permission] = {
    # re-reads of one object after a 409 Conflict (commit.py, report.py): granted, not provoked by this test
    ("", "pods", "get"),
    ("resource.k8s.io", "resourceclaims", "get"),
}
BINDING = ("resource.k8s.io", "resourceclaims/binding", "update")
"""Not a request: Kubernetes >= 1.36 checks it for every write of a claim's status.allocation or reservedFor."""


def used(requests: list[tuple[str, str]]) -> set[Permission]:
    out = {permission(method, url) for method, url in requests}
    if ("resource.k8s.io", "resourceclaims/status", "update") in out:
        out.add(BINDING)
    return out


def assert_grants_what_was_used(kube: Kube, release: Release, requests: list[tuple[str, str]]) -> None:
    """The controller's requests in the run above, as RBAC permissions, against the chart's ClusterRole and Role:
    nothing used is missing, nothing granted is unused but the conflict re-reads."""
    name = f"{release.name}-gpupolicy-controller"
    role = kube.get("rbac.authorization.k8s.io/v1", "ClusterRole", name)
    lease_role = kube.get("rbac.authorization.k8s.io/v1", "Role", f"{name}-lease", release.namespace)
    rules = granted(role["rules"]) | granted(lease_role["rules"])
    asked = used(requests)
    assert asked - rules == set(), "used but not granted"
    assert rules - asked == RE_READS, "granted but never used"
    named = [r for r in lease_role["rules"] if r.get("resourceNames")]
    assert [(r["resourceNames"], sorted(r["verbs"])) for r in named] == [([name], ["get", "update"])]
    lease_paths = {p.split("?")[0] for _, p in requests if "/leases" in p}
    assert lease_paths == {
        f"/apis/coordination.k8s.io/v1/namespaces/{release.namespace}/leases",
        f"/apis/coordination.k8s.io/v1/namespaces/{release.namespace}/leases/{name}",
    }


def test_the_conflict_re_reads_are_in_the_code() -> None:
    """RE_READS are granted for code this test bed does not provoke; they must exist, or the grant is dead."""
    code = "".join(p.read_text() for p in (REPO / "plugin" / "controller").glob("*.py"))
    assert 'api.get("pods"' in code and 'api.get("resourceclaims"' in code


def test_an_upgrade_with_a_new_policy_rolls_both_components(
    kube: Kube, kube_cluster: ControlPlane, release: Release, tmp_path: Path
) -> None:
    def checksums() -> list[str]:
        [deployment] = kube.list("apps/v1", "Deployment", release.namespace)
        [daemonset] = kube.list("apps/v1", "DaemonSet", release.namespace)
        return [o["spec"]["template"]["metadata"]["annotations"]["checksum/policy"] for o in (deployment, daemonset)]

    before = checksums()
    assert before[0] == before[1]
    changed = values()
    changed["policy"] += "\n# changed\n"
    helm = kube_cluster.bin_dir / "helm"
    helm_upgrade(helm, kube_cluster.kubeconfig, release.name, release.namespace, changed, tmp_path)
    after = checksums()
    assert after[0] == after[1] != before[0]
    assert policy_file(kube, release, tmp_path).read_text().endswith("# changed\n")


def run_once(release: Release, kube: Kube, tmp_path: Path) -> tuple[int, str]:
    # only this release's (empty) namespace: other tests' gated pods are not this test's business
    argv = controller_argv(release, policy_file(kube, release, tmp_path), "--once", f"--namespace={release.namespace}")
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_controller_fails_without_a_permission_of_the_chart(kube: Kube, release: Release, tmp_path: Path) -> None:
    """The same pass with the chart's RBAC succeeds, and fails once the chart's Lease RoleBinding is gone: the
    controller's token has no other way in."""
    code, out = run_once(release, kube, tmp_path)
    assert code == 0, out
    assert forbidden_lines(out) == [], out
    [binding] = kube.list("rbac.authorization.k8s.io/v1", "RoleBinding", release.namespace)
    kube.delete("rbac.authorization.k8s.io/v1", "RoleBinding", binding["metadata"]["name"], release.namespace)
    try:

        def refused() -> str | None:
            code, out = run_once(release, kube, tmp_path)
            return out if code == 1 and forbidden_lines(out) else None

        kube.wait_for("the controller refused without its Lease permission", refused, timeout_s=60)
    finally:
        binding["metadata"] = {k: v for k, v in binding["metadata"].items() if k in ("name", "namespace", "labels")}
        kube.create(binding)


PREEMPTION_POLICY = Path(__file__).resolve().parent / "data" / "preemption-h100-policy.yaml"


def tier_template(namespace: str, name: str, device_class: str, tier: str) -> Obj:
    """A claim template whose claims carry the label ``tier`` (the preemption policy's tiers match it)."""
    obj = template(namespace, name, device_class)
    obj["spec"]["metadata"] = {"labels": {"tier": tier}}
    return obj


def test_with_preemption_on_the_chart_grants_exactly_the_evictions_and_budgets_it_uses(
    kube: Kube,
    kube_cluster: ControlPlane,
    cleanup: Cleanup,
    namespace: str,
    kube_scheduler: Process,
    kube_controller_manager: Process,
    tmp_path: Path,
) -> None:
    """``controller.preemption.enabled``: the Deployment gets ``--preemption``, the ClusterRole ``pods/eviction``
    create and ``poddisruptionbudgets`` list. A batch 4g pod placed by the controller (bound by the scheduler; no
    kubelet, so it stays Pending on its node) is evicted for an urgent 4g pod (the H100's only 4g slot), with the
    chart's token; once it is gone (deleted here as its kubelet would) the urgent pod gets its slot. Nothing
    refused, nothing granted unused but the conflict re-reads."""
    helm = kube_cluster.bin_dir / "helm"
    name = f"gp-{uuid.uuid4().hex[:6]}"
    chart_values = {**values(), "policy": PREEMPTION_POLICY.read_text()}
    chart_values["controller"] = {**chart_values["controller"], "preemption": {"enabled": True, "timeoutSeconds": 60}}
    helm_install(helm, kube_cluster.kubeconfig, name, namespace, chart_values, tmp_path)
    try:
        [deployment] = kube.list("apps/v1", "Deployment", namespace)
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--preemption" in args and "--preemption-timeout=60" in args and "--defragment" not in args
        service_account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        kubeconfig = tmp_path / "controller-kubeconfig"
        write_kubeconfig(
            kubeconfig, kube_cluster.server, kube_cluster.ca_file, sa_token(kube, namespace, service_account)
        )
        release = Release(name, namespace, kubeconfig, deployment)
        strands_node(kube, cleanup)
        ns = labelled_namespace(kube, cleanup, {})
        kube.create(tier_template(ns, "batch-4g", "e2e-mig-4g.gpupolicy.dev", "batch"))
        kube.create(tier_template(ns, "urgent-4g", "e2e-mig-4g.gpupolicy.dev", "urgent"))
        log, requests = tmp_path / "controller.log", tmp_path / "requests.jsonl"
        argv = controller_argv(release, policy_file(kube, release, tmp_path), "--batch-window=0.3", "--resync=2",
                               record=requests)  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        try:
            try:
                kube.create(gated_pod(ns, "low", ["batch-4g"]))
                kube.wait_for("the batch pod placed and bound", lambda: bound(kube, ns, "low"), timeout_s=90)
                kube.create(gated_pod(ns, "urgent", ["urgent-4g"]))
                kube.wait_for(
                    "the batch pod evicted",
                    lambda: (
                        not _exists(kube, ns, "low")
                        or kube.get("v1", "Pod", "low", ns)["metadata"].get("deletionTimestamp")
                    ),
                    timeout_s=90,
                )
                kube.wait_for(
                    "a Preempted Event on it",
                    lambda: [e for e in kube.list("v1", "Event", ns) if e.get("reason") == "Preempted"],
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}\ncontroller:\n{log.read_text()[-4000:]}") from None
            held = kube.get("v1", "Pod", "urgent", ns)["metadata"].get("annotations") or {}
            assert "gpupolicy.dev/hold" in held and gates(kube, ns, "urgent") == [GATE]
            # no kubelet: the evicted pod stays, being deleted, with the condition the real Eviction API wrote
            # (EvictionByEvictionAPI) replaced by ours
            victim = kube.get("v1", "Pod", "low", ns)
            [target] = [c for c in victim["status"]["conditions"] if c["type"] == "DisruptionTarget"]
            assert (target["status"], target["reason"]) == ("True", "PreemptionByGpupolicy")
            assert f"higher priority pod {ns}/urgent" in target["message"]
            in_use = devices_in_use(kube)
            assert len(in_use) == len(set(in_use)), "no device in two claims"
            before = [
                r["device"]
                for c in pod_claims(kube, ns, "low")
                for r in c["status"]["allocation"]["devices"]["results"]
            ]
            kube.delete("v1", "Pod", "low", ns)  # what its kubelet would confirm; kube-controller-manager then
            # deletes its claim, the hold is released and the urgent pod placed on the slot it freed
            kube.wait_for("the urgent pod placed and bound", lambda: bound(kube, ns, "urgent"), timeout_s=90)
            [urgent] = pod_claims(kube, ns, "urgent")
            assert [r["device"] for r in urgent["status"]["allocation"]["devices"]["results"]] == before
            assert "gpupolicy.dev/hold" not in (
                kube.get("v1", "Pod", "urgent", ns)["metadata"].get("annotations") or {}
            )
            in_use = devices_in_use(kube)
            assert len(in_use) == len(set(in_use)), "no device in two claims"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        text = log.read_text(errors="replace")
        assert forbidden_lines(text) == [], "the chart's RBAC refused a request of the controller:\n" + text[-3000:]
        role = kube.get("rbac.authorization.k8s.io/v1", "ClusterRole", f"{name}-gpupolicy-controller")
        lease_role = kube.get("rbac.authorization.k8s.io/v1", "Role", f"{name}-gpupolicy-controller-lease", namespace)
        rules = granted(role["rules"]) | granted(lease_role["rules"])
        asked = used(recorded_requests(requests))
        assert {("", "pods/eviction", "create"), ("policy", "poddisruptionbudgets", "list")} <= rules & asked
        assert asked - rules == set(), "used but not granted"
        assert rules - asked <= RE_READS, "granted but never used"
    finally:
        helm_uninstall(helm, kube_cluster.kubeconfig, name, namespace, tmp_path)
