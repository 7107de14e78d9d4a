"""Every ``examples/*`` scenario parses, validates, renders, and its claims fit its policy.

So the documentation never goes stale: a renamed field, a DeviceClass a claim no longer finds, a
selector that would fail at run time on some published device, or a render command that stopped
working all fail here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gpupolicy.plugin.cli.main import main
from gpupolicy.policy.builder import device_view
from gpupolicy.policy.cel import CelRuntimeError, compile_expression
from gpupolicy.policy.cluster import load_cluster, render
from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.k8s.claim import RequestFields
from gpupolicy.policy.k8s.load import load_text
from gpupolicy.policy.k8s.slice import ResourceSlice
from gpupolicy.policy.k8s.validation import validate_object
from gpupolicy.policy.policyfile import CompiledPolicy, load_policy
from gpupolicy.policy.yamlsrc import SourceDoc

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DIRS = sorted(p for p in EXAMPLES.iterdir() if p.is_dir())
FILES = ("policy.yaml", "cluster.yaml", "claims.yaml", "README.md")


def _load(example: Path) -> tuple[CompiledPolicy, list[ResourceSlice]]:
    policy = load_policy((example / "policy.yaml").read_text(encoding="utf-8"), str(example / "policy.yaml"))
    cluster = load_cluster((example / "cluster.yaml").read_text(encoding="utf-8"), str(example / "cluster.yaml"))
    _, slices = render(policy, cluster)
    return policy, slices


def _views(policy: CompiledPolicy, slices: list[ResourceSlice]) -> list[tuple[str, DeviceView]]:
    return [(d.name, device_view(policy.driver_name, d.to_wire())) for s in slices for d in s.devices]


def _requests(example: Path) -> list[tuple[str, RequestFields]]:
    result = load_text((example / "claims.yaml").read_text(encoding="utf-8"), str(example / "claims.yaml"))
    result.raise_for_errors()
    specs = [c.obj.spec for c in result.claims] + [t.obj.spec.spec for t in result.claim_templates]
    return [(name, fields) for spec in specs for req in spec.requests for name, fields in req.alternatives()]


def test_there_are_examples() -> None:
    names = {p.name for p in DIRS}
    assert {"mig-inference", "timesliced-notebooks", "mps-serving", "mixed-fleet-quotas", "first-fit-strands"} <= names


@pytest.mark.parametrize("example", DIRS, ids=lambda p: p.name)
def test_files_present(example: Path) -> None:
    for name in FILES:
        assert (example / name).is_file(), name
    assert "gpupolicy render" in (example / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("example", DIRS, ids=lambda p: p.name)
def test_rendered_objects_pass_api_validation(example: Path) -> None:
    policy, slices = _load(example)
    assert slices
    for obj in [*policy.device_classes, *slices]:
        wire = obj.to_wire()
        assert validate_object(obj, SourceDoc(wire, "rendered")) == [], wire["metadata"]["name"]


@pytest.mark.parametrize("example", DIRS, ids=lambda p: p.name)
def test_claims_use_the_policy_classes_and_find_devices(example: Path) -> None:
    policy, slices = _load(example)
    classes = {c.name: c for c in policy.device_classes}
    views = _views(policy, slices)
    requests = _requests(example)
    assert requests
    for name, fields in requests:
        assert fields.device_class_name in classes, f"{name}: no DeviceClass {fields.device_class_name}"
        class_programs = [compile_expression(e) for e in classes[fields.device_class_name].cel_expressions]
        request_programs = [compile_expression(e) for e in fields.cel_expressions]
        matching = []
        for device_name, view in views:
            # A run-time error fails the claim in Kubernetes, so class selectors must not raise on any device.
            if all(p.evaluate(view) for p in class_programs) and all(p.evaluate(view) for p in request_programs):
                matching.append(device_name)
        assert matching, f"{example.name}: request {name} matches no published device"


@pytest.mark.parametrize("example", DIRS, ids=lambda p: p.name)
def test_policy_rules_evaluate_on_every_device(example: Path) -> None:
    """Admission rules and preferences must not hit CEL run-time errors on any published device."""
    policy, slices = _load(example)
    rules = [a.rule for a in policy.admission] + [p.rule for p in policy.preferences]
    views = _views(policy, slices)
    claims = [
        {"namespace": ns, "name": "c", "labels": {"team": "interns"}, "annotations": {}}
        for ns in ("prod", "dev", "notebooks", "serving-a")
    ]
    request = {"name": "r", "deviceClassName": "x"}
    for rule in rules:
        assert rule.program is not None
        for claim in claims:
            results = rule.program.evaluate_devices([v for _, v in views], claim=claim, request=request)
            errors = [(name, r) for (name, _), r in zip(views, results) if isinstance(r, CelRuntimeError)]
            assert not errors, f"{example.name}: rule {rule.name} fails on {errors[:3]}"


@pytest.mark.parametrize("example", DIRS, ids=lambda p: p.name)
@pytest.mark.parametrize("output", ["yaml", "json"])
def test_render_cli(example: Path, output: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["render", str(example / "policy.yaml"), str(example / "cluster.yaml"), "-o", output])
    out = capsys.readouterr().out
    assert code == 0
    if output == "json":
        items = json.loads(out)["items"]
    else:
        items = [d for d in yaml.safe_load_all(out) if d]
    policy, slices = _load(example)
    assert len(items) == len(policy.device_classes) + len(slices)
    assert [i["kind"] for i in items].count("DeviceClass") == len(policy.device_classes)
    again = main(["render", str(example / "policy.yaml"), str(example / "cluster.yaml"), "-o", output])
    assert again == 0 and capsys.readouterr().out == out  # deterministic


def test_render_reports_errors_of_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: gpupolicy.dev/v1alpha1\nkind: GpuPolicy\nmetadata: {name: t}\nspec:\n  objective: fastest\n"
    )
    cluster = tmp_path / "c.yaml"
    cluster.write_text(
        "apiVersion: gpupolicy.dev/v1alpha1\nkind: ClusterDescription\nmetadata: {name: c}\n"
        "spec:\n  nodes:\n  - name: a\n    gpus: {model: Z9000}\n"
    )
    assert main(["render", str(policy), str(cluster)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith(f"{policy}:5:") and "invalid_value" in line for line in err), err
    assert any(line.startswith(f"{cluster}:7:") and "unknown_gpu_model" in line for line in err), err


def test_render_reports_a_layout_that_does_not_fit_at_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: gpupolicy.dev/v1alpha1\nkind: GpuPolicy\nmetadata: {name: t}\nspec:\n  sharing:\n"
        "  - name: five-1g\n    mig: {layout: [1g.10gb, 1g.10gb, 1g.10gb, 1g.10gb, 1g.10gb]}\n"
    )
    cluster = tmp_path / "c.yaml"
    cluster.write_text(
        "apiVersion: gpupolicy.dev/v1alpha1\nkind: ClusterDescription\nmetadata: {name: c}\n"
        "spec:\n  nodes:\n  - name: a\n    gpus: {model: A100-40GB}\n    mig: enabled\n"
    )
    # Five 1g.10gb fit an H100 (one memory slot each), so the policy loads; on an A100-40GB a
    # 1g.10gb takes two slots and only four fit: rendering fails, pointing at the rule.
    assert main(["render", str(policy), str(cluster)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{policy}:6:") and "mig_layout_does_not_fit" in line, line


def test_render_golden(capsys: pytest.CaptureFixture[str]) -> None:
    """``examples/first-fit-strands/rendered.yaml`` is exactly what render prints. To update after an
    intended change: ``gpupolicy render examples/first-fit-strands/{policy,cluster}.yaml > .../rendered.yaml``."""
    example = EXAMPLES / "first-fit-strands"
    assert main(["render", str(example / "policy.yaml"), str(example / "cluster.yaml")]) == 0
    assert capsys.readouterr().out == (example / "rendered.yaml").read_text(encoding="utf-8")
