"""docs/policy-reference.md stays true: its YAML snippets load, and it names every policy field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from gpupolicy.policy.cluster import load_cluster
from gpupolicy.policy.policyfile import load_policy
from gpupolicy.policy.policyfile.model import GpuPolicy

DOC = Path(__file__).resolve().parents[3] / "docs" / "policy-reference.md"
HEADER = "apiVersion: gpupolicy.dev/v1alpha1\nkind: GpuPolicy\nmetadata: {name: doc}\n"


def _snippets() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _as_file(snippet: str) -> str:
    if snippet.startswith("apiVersion:"):
        return snippet
    if snippet.startswith("spec:"):
        return HEADER + snippet
    return HEADER + "spec:\n" + "".join(f"  {line}" for line in snippet.splitlines(keepends=True))


@pytest.mark.parametrize("snippet", _snippets(), ids=lambda s: s.splitlines()[0][:40])
def test_snippet_loads(snippet: str) -> None:
    text = _as_file(snippet)
    if "kind: ClusterDescription" in text:
        assert load_cluster(text, "doc.yaml").nodes
    else:
        load_policy(text, "doc.yaml")


def _fields(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    out: set[str] = set()
    if model in seen:
        return out
    seen.add(model)
    for name, info in model.model_fields.items():
        out.add(info.alias or to_camel(name))
        for arg in _models_in(info.annotation):
            out |= _fields(arg, seen)
    return out


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def test_every_field_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    in_code = {word for span in re.findall(r"`([^`\n]+)`", prose) for word in re.findall(r"\w+", span)}
    in_yaml = set(re.findall(r"^\s*-?\s*(\w+):", text, flags=re.M))
    missing = sorted(f for f in _fields(GpuPolicy, set()) if f not in in_code | in_yaml)
    assert not missing, f"fields not in docs/policy-reference.md: {missing}"
