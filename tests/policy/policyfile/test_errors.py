"""Policy files that must be rejected, table-driven from ``errors.yaml``: code, line, column, key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.policy.policyfile import load_policy

HERE = Path(__file__).resolve().parent
HEADER = "apiVersion: gpupolicy.dev/v1alpha1\nkind: GpuPolicy\nmetadata: {name: t}\nspec:\n"


def _cases(name: str) -> list[dict[str, Any]]:
    return [c for c in yaml.safe_load_all((HERE / name).read_text(encoding="utf-8")) if c]


def _indent(body: str) -> str:
    return "".join(f"  {line}" if line.strip() else line for line in body.splitlines(keepends=True))


def _check(case: dict[str, Any]) -> None:
    text = HEADER + _indent(case["spec"])
    with pytest.raises(DiagnosticError) as info:
        load_policy(text, "policy.yaml")
    got = info.value.diagnostics
    for want in case["want"]:
        matches = [
            d
            for d in got
            if d.code == want["code"]
            and d.location.line == want["line"]
            and ("col" not in want or d.location.col == want["col"])
            and ("path" not in want or d.location.path == want["path"])
        ]
        assert matches, f"{want} not in {[str(d) for d in got]}"
    assert all(d.location.file == "policy.yaml" for d in got)
    assert all(d.location.line > 0 for d in got), [str(d) for d in got]


@pytest.mark.parametrize("case", _cases("errors.yaml"), ids=lambda c: c["name"])
def test_schema_errors(case: dict[str, Any]) -> None:
    _check(case)


@pytest.mark.parametrize("case", _cases("cel_errors.yaml"), ids=lambda c: c["name"])
def test_cel_errors(case: dict[str, Any]) -> None:
    _check(case)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("apiVersion: gpupolicy.dev/v1\nkind: GpuPolicy\nmetadata: {name: t}\nspec: {}\n", "unknown_api_version"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: t}\n", "unexpected_kind"),
        ("", "policy_missing"),
        ("a: 1\na: 2\n", "yaml_duplicate_key"),
        ("spec: [\n", "yaml_syntax_error"),
        (HEADER + "  {}\n---\n" + HEADER + "  {}\n", "multiple_policies"),
    ],
)
def test_document_errors(text: str, code: str) -> None:
    with pytest.raises(DiagnosticError) as info:
        load_policy(text, "p.yaml")
    assert code in [d.code for d in info.value.diagnostics]


def test_errors_are_sorted_by_line() -> None:
    text = HEADER + _indent("objective: fastest\nsolver: {workers: 100}\nquotas:\n- {namespace: a, gpus: -1}\n")
    with pytest.raises(DiagnosticError) as info:
        load_policy(text, "p.yaml")
    lines = [d.location.line for d in info.value.diagnostics]
    assert lines == sorted(lines) and len(lines) == 3
    assert str(info.value.diagnostics[0]).startswith("p.yaml:5:14: invalid_value:")
