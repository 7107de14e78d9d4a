"""`gpupolicy solve --previous`: an earlier plan is kept where nothing more important decides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupolicy.plugin.cli.main import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mig-inference"
BASE = [
    "solve",
    "--policy",
    str(EXAMPLE / "policy.yaml"),
    "--inventory",
    str(EXAMPLE / "cluster.yaml"),
    "--claims",
    str(EXAMPLE / "claims.yaml"),
    "-o",
    "json",
    "--no-timing",
    "--workers",
    "1",
    "--seed",
    "0",
]


def _solve(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, dict[str, str]]:
    assert main([*BASE, *extra]) == 0
    doc = json.loads(capsys.readouterr().out)
    return {
        c["metadata"]["name"]: {r["pool"]: r["device"] for r in c["status"]["allocation"]["devices"]["results"]}
        for c in doc["claims"]
    }


def test_previous_plan_breaks_ties(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(BASE) == 0
    doc = json.loads(capsys.readouterr().out)
    full = next(c for c in doc["claims"] if c["metadata"]["name"] == "batch-full-gpu")
    result = full["status"]["allocation"]["devices"]["results"][0]
    pool, first = result["pool"], result["device"]
    # Any other idle whole GPU of that node is exactly as good to the objective: pick one nobody holds.
    held = {r["device"] for c in doc["claims"] for r in c["status"]["allocation"]["devices"]["results"]}
    other = next(f"gpu-{i}" for i in range(7, 0, -1) if f"gpu-{i}" != first and not any(
        d.startswith(f"gpu-{i}-") or d == f"gpu-{i}" for d in held
    ))  # fmt: skip
    result["device"] = other
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(doc))
    assert _solve(capsys, "--previous", str(plan))["batch-full-gpu"] == {pool: other}
    # without the plan the solver makes its own (deterministic) choice again
    assert _solve(capsys)["batch-full-gpu"] == {pool: first}


def test_previous_plan_errors_are_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "plan.yaml"
    bad.write_text("claims: [\n")
    assert main([*BASE, "--previous", str(bad)]) == 1
    assert f"{bad}:2:1: yaml_syntax_error" in capsys.readouterr().err
    unrelated = tmp_path / "other.yaml"
    unrelated.write_text(
        "apiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {name: nobody, namespace: x}\n"
        "spec: {devices: {requests: [{name: g, exactly: {deviceClassName: c}}]}}\n"
        "status: {allocation: {devices: {results: [{request: g, driver: d, pool: p, device: gpu-0}]}}}\n"
    )
    assert main([*BASE, "--previous", str(unrelated)]) == 1
    assert "previous_plan_unused" in capsys.readouterr().err
