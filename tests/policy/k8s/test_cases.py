"""Table-driven cases: each YAML input gives exactly the listed located diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gpupolicy.policy.k8s.load import load_text

CASES = Path(__file__).resolve().parent / "cases"


def _cases() -> list[Any]:
    out = []
    for path in sorted(CASES.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text()):
            out.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return out


@pytest.mark.parametrize("case", _cases())
def test_case(case: dict[str, Any]) -> None:
    result = load_text(case["input"], "case.yaml")
    got = [f"{d.location.line}:{d.location.col} {d.code} {d.location.path}" for d in result.diagnostics]
    assert got == case["errors"]
    assert all(d.location.file == "case.yaml" and d.message for d in result.diagnostics)


def test_every_stable_code_is_exercised() -> None:
    codes = set()
    for path in CASES.glob("*.yaml"):
        for case in yaml.safe_load(path.read_text()):
            codes |= {entry.split()[1] for entry in case["errors"]}
    expected = {
        "invalid_name",
        "missing_field",
        "unknown_field",
        "invalid_type",
        "invalid_value",
        "mutually_exclusive",
        "duplicate_name",
        "duplicate_value",
        "unknown_reference",
        "unknown_kind",
        "too_long",
        "invalid_quantity",
        "invalid_semver",
    }
    assert expected <= codes
