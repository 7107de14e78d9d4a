"""Name formats and node selector evaluation."""

from __future__ import annotations

import pytest

from gpupolicy.policy.k8s import names
from gpupolicy.policy.k8s.meta import NodeSelector
from gpupolicy.policy.k8s.nodeselect import node_selector_matches


@pytest.mark.parametrize(
    ("check", "value", "ok"),
    [
        (names.dns1123_label, "gpu-0", True),
        (names.dns1123_label, "gpu.0", False),
        (names.dns1123_label, "-gpu", False),
        (names.dns1123_subdomain, "gpu.example.com", True),
        (names.dns1123_subdomain, "Gpu.example.com", False),
        (names.driver_name, "GPU.Example.com", True),  # compared in lower case, as CSI driver names
        (names.driver_name, "gpu_example.com", False),
        (names.pool_name, "fabric/rack-1", True),
        (names.pool_name, "fabric//rack-1", False),
        (names.qualified_name, "memory", True),
        (names.qualified_name, "gpu.example.com/memory", True),
        (names.qualified_name, "gpu.example.com/mem-ory", False),
        (names.fully_qualified_name, "memory", False),
        (names.label_key, "example.com/maintenance", True),
        (names.label_key, "a/b/c", False),
        (names.label_value, "", True),
        (names.label_value, "-x", False),
    ],
)
def test_name_rules(check: object, value: str, ok: bool) -> None:
    assert callable(check)
    assert (check(value) == []) is ok


@pytest.mark.parametrize(
    ("version", "ok"),
    [("1.2.3", True), ("550.54.15", True), ("1.0.0-rc.1+build.5", True), ("1.2", False), ("01.2.3", False)],
)
def test_semver_rule(version: str, ok: bool) -> None:
    assert names.is_semver(version) is ok


def _selector(*expressions: dict[str, object], fields: list[dict[str, object]] | None = None) -> NodeSelector:
    term: dict[str, object] = {"matchExpressions": list(expressions)}
    if fields:
        term["matchFields"] = fields
    return NodeSelector.model_validate({"nodeSelectorTerms": [term]})


@pytest.mark.parametrize(
    ("requirement", "labels", "ok"),
    [
        ({"key": "zone", "operator": "In", "values": ["a"]}, {"zone": "a"}, True),
        ({"key": "zone", "operator": "In", "values": ["a"]}, {}, False),
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, {}, True),
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, {"zone": "a"}, False),
        ({"key": "gpu", "operator": "Exists"}, {"gpu": ""}, True),
        ({"key": "gpu", "operator": "DoesNotExist"}, {"gpu": ""}, False),
        ({"key": "count", "operator": "Gt", "values": ["3"]}, {"count": "4"}, True),
        ({"key": "count", "operator": "Lt", "values": ["3"]}, {"count": "4"}, False),
        ({"key": "count", "operator": "Gt", "values": ["3"]}, {"count": "many"}, False),
    ],
)
def test_node_selector_requirements(requirement: dict[str, object], labels: dict[str, str], ok: bool) -> None:
    assert node_selector_matches(_selector(requirement), "node-1", labels) is ok


def test_node_selector_terms_and_fields() -> None:
    by_name = _selector(fields=[{"key": "metadata.name", "operator": "In", "values": ["node-1"]}])
    assert node_selector_matches(by_name, "node-1", {})
    assert not node_selector_matches(by_name, "node-2", {})
    empty = NodeSelector.model_validate({"nodeSelectorTerms": [{}]})
    assert not node_selector_matches(empty, "node-1", {})
