"""Scenario 2 (examples): for every ``examples/*`` scenario, the DeviceClasses its policy renders, the ResourceSlices
it publishes for its cluster, and its claims, templates and pods are accepted by the real API server — created for
real and with ``?dryRun=All`` — and what the server gives back reads cleanly in our own object model."""

from __future__ import annotations

import copy
import uuid

import pytest
import yaml

from gpupolicy.policy.k8s.load import load_text
from tests.e2e.conftest import Cleanup
from tests.e2e.examples import Example, cli_has, examples, run_cli, yaml_objects
from tests.e2e.kube import Kube, Obj, create_namespace

pytestmark = pytest.mark.testbed

EXAMPLES = examples()
SERVER_META = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


def ids(example: Example) -> str:
    return example.name


def reads_back_cleanly(obj: Obj) -> list[str]:
    """Diagnostics our loader gives on an object exactly as the server returned it (``kubectl get -o yaml``)."""
    result = load_text(yaml.safe_dump(obj), "<server>")
    return [f"{d.code}: {d.message}" for d in result.diagnostics]


def without_server_meta(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    for key in SERVER_META:
        out["metadata"].pop(key, None)
    return out


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 4, "scenario 2 runs over every examples/* policy"


@pytest.mark.parametrize("example", EXAMPLES, ids=ids)
def test_policy_device_classes_are_accepted(kube: Kube, cleanup: Cleanup, example: Example) -> None:
    classes = example.device_classes()
    assert classes, f"{example.name}: the policy defines no DeviceClass"
    for wanted in classes:
        echoed = kube.create(wanted, dry_run=True)
        assert echoed["spec"] == wanted["spec"]
        stored = cleanup.create(wanted)
        assert without_server_meta(stored) == wanted
        assert reads_back_cleanly(stored) == []


@pytest.mark.parametrize("example", EXAMPLES, ids=ids)
def test_published_slices_are_accepted(kube: Kube, cleanup: Cleanup, example: Example) -> None:
    slices = example.slices()
    assert slices
    for wanted in slices:
        kube.create(wanted, dry_run=True)
        stored = cleanup.create(wanted)
        assert without_server_meta(stored) == wanted, wanted["metadata"]["name"]
    stored_all = kube.list("resource.k8s.io/v1", "ResourceSlice", field_selector=f"spec.driver={example.driver()}")
    assert reads_back_cleanly({"apiVersion": "v1", "kind": "List", "items": stored_all}) == []


@pytest.mark.parametrize("example", EXAMPLES, ids=ids)
def test_claims_templates_and_pods_are_accepted(kube: Kube, cleanup: Cleanup, example: Example) -> None:
    """Claims and templates are created for real (in fresh namespaces named after the example's); pods only with
    a server-side dry run, so the session's scheduler never sees them."""
    workloads = example.workloads()
    assert workloads, f"{example.name}: no claims, templates or pods"
    suffix = uuid.uuid4().hex[:6]
    renamed: dict[str, str] = {}
    for obj in workloads:
        original = obj["metadata"].get("namespace", "default")
        if original not in renamed:
            renamed[original] = f"{original}-{suffix}"[:63]
            cleanup.track(create_namespace(kube, renamed[original]))
    for obj in workloads:
        wanted = copy.deepcopy(obj)
        wanted["metadata"]["namespace"] = renamed[obj["metadata"].get("namespace", "default")]
        echoed = kube.create(wanted, dry_run=True)
        assert echoed["metadata"]["name"] == obj["metadata"]["name"]
        if obj["kind"] == "Pod":
            continue
        stored = cleanup.create(wanted)
        assert reads_back_cleanly(stored) == [], obj["metadata"]["name"]


@pytest.mark.skipif(not cli_has("render"), reason="`gpupolicy render` is not registered yet (plugin/cli/render.py)")
@pytest.mark.parametrize("example", EXAMPLES, ids=ids)
def test_render_output_passes_server_side_dry_run(kube: Kube, example: Example) -> None:
    """What users would pipe into ``kubectl apply``: the CLI's output, every object, dry-run on the server."""
    out = run_cli("render", str(example.policy_file()), str(example.cluster_file()))
    assert out.returncode == 0, out.stderr
    objects = yaml_objects(out.stdout)
    kinds = {o["kind"] for o in objects}
    assert {"DeviceClass", "ResourceSlice"} <= kinds
    for obj in objects:
        kube.create(obj, dry_run=True)
