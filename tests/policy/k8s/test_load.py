"""Loading: the three API versions give the same v1 objects; kinds, skipping, locations."""

from __future__ import annotations

import pytest

from gpupolicy.policy.k8s.claim import ResourceClaim
from gpupolicy.policy.k8s.load import LoadResult, load_objects, load_text
from gpupolicy.policy.yamlsrc import parse_yaml

from .conftest import read_data


def _load(text: str, name: str = "f.yaml") -> LoadResult:
    result = load_text(text, name)
    assert result.diagnostics == []
    return result


def test_valid_v1_fixture_loads_every_kind() -> None:
    result = _load(read_data("valid_v1.yaml"))
    assert [len(x) for x in (result.device_classes, result.claims, result.claim_templates, result.slices)] == [
        1,
        1,
        1,
        3,
    ]
    claim = result.claims[0].obj
    assert claim.ref == ("ml", "train")
    assert [r.name for r in claim.spec.requests] == ["gpus", "mig", "all-nics", "shared"]
    mig = claim.spec.requests[1]
    assert [name for name, _ in mig.alternatives()] == ["mig/big", "mig/small"]
    assert claim.spec.requests[0].exactly is not None and claim.spec.requests[0].exactly.effective_count == 2
    all_nics = claim.spec.requests[2].exactly
    assert all_nics is not None and all_nics.mode == "All" and all_nics.effective_count == 0
    assert claim.allocation is not None and len(claim.allocation.results) == 4


def test_v1beta2_is_the_v1_shape() -> None:
    v1 = _load(read_data("valid_v1.yaml"))
    beta2 = _load(read_data("valid_v1.yaml").replace("resource.k8s.io/v1\n", "resource.k8s.io/v1beta2\n"))
    assert [o.obj for o in beta2.objects()] == [o.obj for o in v1.objects()]
    assert {o.source_version for o in beta2.objects()} == {"resource.k8s.io/v1beta2"}
    assert {o.obj.api_version for o in beta2.objects()} == {"resource.k8s.io/v1"}


def test_v1beta1_converts_to_the_same_v1_objects() -> None:
    v1 = _load(read_data("valid_v1.yaml"))
    beta1 = _load(read_data("valid_v1beta1.yaml"))
    assert beta1.claims[0].obj.spec == v1.claims[0].obj.spec
    assert beta1.claim_templates[0].obj.spec == v1.claim_templates[0].obj.spec
    v1_slices = {s.obj.name: s.obj for s in v1.slices}
    for loaded in beta1.slices:
        assert loaded.obj.spec == v1_slices[loaded.obj.name].spec
        assert loaded.source_version == "resource.k8s.io/v1beta1"


def test_objects_locate_their_parts_in_the_source_file() -> None:
    beta1 = _load(read_data("valid_v1beta1.yaml"), "beta1.yaml")
    claim = beta1.claims[0]
    # v1 path (under "exactly") maps back to where the v1beta1 file wrote it.
    loc = claim.doc.locate(("spec", "devices", "requests", 0, "exactly", "count"))
    assert (loc.file, loc.path) == ("beta1.yaml", "spec.devices.requests[0].count")
    assert read_data("valid_v1beta1.yaml").splitlines()[loc.line - 1].strip() == "count: 2"
    slc = beta1.slices[0]
    loc = slc.doc.locate(("spec", "devices", 0, "capacity", "memory"))
    assert loc.path == "spec.devices[0].basic.capacity.memory"
    assert read_data("valid_v1beta1.yaml").splitlines()[loc.line - 1].strip().startswith("memory: {value: 80Gi}")


def test_unknown_kinds_are_reported_or_skipped() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n" + read_data("valid_v1.yaml")
    reported = load_text(text, "f.yaml")
    assert [d.code for d in reported.diagnostics] == ["unknown_kind"]
    assert len(reported.slices) == 3
    skipped = load_text(text, "f.yaml", skip_unknown=True)
    assert skipped.ok and [d.kind for d in skipped.skipped] == ["ConfigMap"]


def test_kinds_filter_skips_other_kinds() -> None:
    docs = parse_yaml(read_data("valid_v1.yaml"), "f.yaml")
    result = load_objects(docs, kinds={"ResourceSlice"})
    assert result.ok and len(result.slices) == 3 and result.claims == [] and len(result.skipped) == 3


def test_invalid_objects_are_left_out_and_all_errors_kept() -> None:
    text = read_data("valid_v1.yaml").replace("name: gpu-3\n", "name: GPU-3\n").replace("count: 2\n", "count: -2\n", 1)
    result = load_text(text, "f.yaml")
    assert sorted(d.code for d in result.diagnostics) == ["invalid_name", "invalid_value"]
    assert result.claims == [] and len(result.slices) == 2
    with pytest.raises(Exception, match="invalid_name"):
        result.raise_for_errors()


def test_yaml_errors_become_diagnostics() -> None:
    result = load_text("a: [1,\n", "bad.yaml")
    assert [d.code for d in result.diagnostics] == ["yaml_syntax_error"]


def test_claim_template_and_pods() -> None:
    pod = """
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  nodeName: node-1
  schedulingGates: [{name: wait}]
  nodeSelector: {gpu: "yes"}
  containers:
  - name: a
    resources: {requests: {cpu: 500m, memory: 1Gi}, claims: [{name: gpu}]}
  - name: b
    resources: {requests: {cpu: "1"}}
  initContainers:
  - name: i
    resources: {requests: {cpu: "2"}}
  resourceClaims: [{name: gpu, resourceClaimTemplateName: one-gpu}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec:
  parallelism: 4
  template:
    spec:
      containers: [{name: c}]
"""
    result = _load(pod)
    spec = result.pods[0].obj.spec
    assert str(spec.total_request("cpu")) == "2"  # the init container needs more than 1.5
    assert str(spec.total_request("memory")) == "1Gi"
    assert spec.node_name == "node-1" and spec.scheduling_gates and spec.node_selector == {"gpu": "yes"}
    assert result.pods[0].obj.metadata.namespace_or_default == "default"
    assert result.workloads[0].obj.pod_count == 4


def test_python_names_are_not_accepted_on_the_wire() -> None:
    with pytest.raises(Exception, match="device_class_name"):
        ResourceClaim.model_validate(
            {"spec": {"devices": {"requests": [{"name": "a", "exactly": {"device_class_name": "x"}}]}}}
        )


def test_errors_in_a_kubectl_list_point_at_the_item() -> None:
    text = read_data("kubectl_resourceslices.yaml").replace("name: gpu-1\n", "name: gpu_1\n")
    result = load_text(text, "list.yaml")
    [diagnostic] = result.diagnostics
    assert diagnostic.code == "invalid_name"
    assert diagnostic.location.path == "items[0].spec.devices[1].name"
    assert text.splitlines()[diagnostic.location.line - 1].strip() == "name: gpu_1"
    assert [s.obj.name for s in result.slices] == ["cluster-nics"]
