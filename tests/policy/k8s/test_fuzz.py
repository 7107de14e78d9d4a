"""Random mutations of valid objects never produce a traceback: only diagnostics."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpupolicy.policy.k8s.dump import dump_objects
from gpupolicy.policy.k8s.load import load_text
from gpupolicy.policy.yamlsrc import parse_yaml

from .conftest import read_data

BASES = [
    doc.data
    for name in ("valid_v1.yaml", "valid_v1beta1.yaml", "kubectl_resourceslices.yaml")
    for doc in parse_yaml(read_data(name), name)
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.sampled_from(["", "All", "ExactCount", "Exists", "1.2.3", "80Gi", "-1", "a/b/c", "resource.k8s.io/v1beta1"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    if not path:
        return value if action == "replace" else doc
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "replace":
        parent[key] = value
    elif action == "delete":
        del parent[key]
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[key]))
    elif action == "add_key" and isinstance(parent[key], dict):
        parent[key][str(value)[:20] or "x"] = value
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(BASES),
    data=st.data(),
    actions=st.lists(st.sampled_from(["replace", "delete", "duplicate", "add_key"]), min_size=1, max_size=4),
)
def test_mutations_give_diagnostics_not_tracebacks(base: Any, data: st.DataObject, actions: list[str]) -> None:
    doc = copy.deepcopy(base)
    for action in actions:
        path = data.draw(st.sampled_from(_paths(doc)))
        doc = _mutate(doc, path, action, data.draw(values))
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except (yaml.YAMLError, ValueError, OverflowError):
        return
    result = load_text(text, "fuzz.yaml")
    for diagnostic in result.diagnostics:
        assert diagnostic.code and diagnostic.message
    # Whatever loaded is valid and survives a round trip.
    objects = [o.obj for o in result.objects()]
    again = load_text(dump_objects(objects), "again.yaml")
    assert again.ok, again.diagnostics
    assert [o.obj for o in again.objects()] == objects
