"""The Helm chart grants the plugin's ServiceAccount exactly what the plugin's code asks of the API server: every
request of ``NodeApi`` (its one door) and of ``gpupolicy plugin withdraw``, made against a recording stand-in, and
nothing more (read from the chart's templates; ``tests/e2e/test_helm_chart.py`` checks it with helm and a real
API server)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.plugin.kubelet.api_calls import TEMPLATED, Permission, granted, permission, render_static, used_permissions

TEMPLATES = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "gpupolicy" / "templates"


def chart_rules() -> list[dict[str, Any]]:
    docs = render_static((TEMPLATES / "plugin-rbac.yaml").read_text(encoding="utf-8"))
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["kind"] == "ClusterRole"
    assert [s["kind"] for s in binding["subjects"]] == ["ServiceAccount"]
    assert TEMPLATED not in repr(role["rules"]), "the rules must not depend on values: this test reads them as written"
    return list(role["rules"])


def test_the_chart_runs_only_the_plugin_under_its_service_account() -> None:
    """What the plugin's ServiceAccount runs is what the calls below cover: one container, ``gpupolicy plugin run``,
    in plugin-daemonset.yaml; the controller runs under its own ServiceAccount (controller-*.yaml, checked by
    tests/e2e/test_chart_install.py); all RBAC objects are in plugin-rbac.yaml and controller-rbac.yaml."""
    commands = {}
    for template in sorted(TEMPLATES.glob("*.yaml")):
        text = template.read_text(encoding="utf-8")
        commands[template.name] = re.findall(r"^\s*command:\s*(.*)$", text, re.MULTILINE)
        if template.name not in ("plugin-rbac.yaml", "controller-rbac.yaml"):
            assert not re.search(r"^kind:\s*(Cluster)?Role(Binding)?\s*$", text, re.MULTILINE), template.name
    assert {k: v for k, v in commands.items() if v} == {
        "plugin-daemonset.yaml": ['["gpupolicy", "plugin", "run"]'],
        "controller-deployment.yaml": ['["gpupolicy", "controller", "run"]'],
    }
    daemonset = (TEMPLATES / "plugin-daemonset.yaml").read_text(encoding="utf-8")
    assert "initContainers" not in daemonset
    assert 'serviceAccountName: {{ include "gpupolicy.serviceAccountName" . }}' in daemonset


def test_the_chart_grants_exactly_what_the_plugin_uses(tmp_path: Path) -> None:
    used = set().union(*used_permissions(tmp_path).values())
    rules = granted(chart_rules())
    assert rules - used == set(), "granted but never used"
    assert used - rules == set(), "used but not granted"


def test_each_call_needs_what_it_asks_for(tmp_path: Path) -> None:
    """The derivation itself: which call needs which permission."""
    calls = used_permissions(tmp_path)
    claims, slices = ("resource.k8s.io", "resourceclaims"), ("resource.k8s.io", "resourceslices")
    assert calls == {
        "get_claim": {(*claims, "get")},
        "get_claim_async": {(*claims, "get")},
        "list_claims": {(*claims, "list")},
        "get_node": {("", "nodes", "get")},
        "list_slices": {(*slices, "list")},
        "watch_slices": {(*slices, "list"), (*slices, "watch")},
        "watch_node": {("", "nodes", "list"), ("", "nodes", "watch")},
        "create_slice": {(*slices, "create")},
        "replace_slice": {(*slices, "update")},
        "delete_slice": {(*slices, "delete")},
        "create_event": {("", "events", "create")},
        "plugin withdraw": {(*slices, "list"), (*slices, "delete")},
    }


RC, RS = "/apis/resource.k8s.io/v1/namespaces/d/resourceclaims", "/apis/resource.k8s.io/v1/resourceslices"


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("GET", "/api/v1/nodes/n", ("", "nodes", "get")),
        ("GET", "/api/v1/nodes", ("", "nodes", "list")),
        ("GET", "/api/v1/namespaces/ns/pods?watch=true&resourceVersion=1", ("", "pods", "watch")),
        ("GET", "/api/v1/namespaces/ns", ("", "namespaces", "get")),
        ("POST", "/api/v1/namespaces/default/events", ("", "events", "create")),
        ("PATCH", "/apis/events.k8s.io/v1/namespaces/d/events/e", ("events.k8s.io", "events", "patch")),
        ("PUT", f"{RC}/c/status", ("resource.k8s.io", "resourceclaims/status", "update")),
        ("DELETE", f"{RS}/s", ("resource.k8s.io", "resourceslices", "delete")),
        ("DELETE", f"{RS}?fieldSelector=x", ("resource.k8s.io", "resourceslices", "deletecollection")),
    ],
)  # fmt: skip
def test_requests_map_to_rbac_verbs(method: str, url: str, expected: Permission) -> None:
    assert permission(method, url) == expected
