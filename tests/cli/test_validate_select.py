"""`gpupolicy validate` and `gpupolicy select` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupolicy.plugin.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = str(ROOT / "examples" / "mig-inference" / "cluster.yaml")

BROKEN = """\
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata:
  name: broken
spec:
  devices:
    requests:
    - name: gpu
      exactly:
        deviceClassName: gpu.example.com
        selectors:
        - cel:
            expression: 'device.attributes["x"].model == '
        - cel:
            expression: '"abc"'
      bogus: 1
---
apiVersion: resource.k8s.io/v1beta1
kind: DeviceClass
metadata: {name: c}
spec:
  selectors:
  - cel: {expression: "device.driver.size() > 'a'"}
"""


def test_validate_examples_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "examples")]) == 0
    assert capsys.readouterr().out == ""


def test_validate_reports_every_error_sorted_with_locations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN)
    assert main(["validate", str(bad), str(tmp_path / "missing.yaml")]) == 1
    lines = capsys.readouterr().out.splitlines()
    f = str(bad)
    assert lines == [
        f"{f}:13:57: cel_compile_error: syntax error: unexpected end of expression"
        " (at spec.devices.requests[0].exactly.selectors[0].cel.expression)",
        f"{f}:15:25: cel_type_error: must evaluate to bool or the unknown type, not string"
        " (at spec.devices.requests[0].exactly.selectors[1].cel.expression)",
        f'{f}:16:7: unknown_field: field "bogus" is not allowed (at spec.devices.requests[0].bogus)',
        f"{f}:23:44: cel_type_error: found no matching overload for '_>_' applied to '(int, string)'"
        " (at spec.selectors[0].cel.expression)",
        f"{tmp_path / 'missing.yaml'}:0:0: file_not_found: no such file or directory",
    ]


def test_validate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [\n")
    assert main(["validate", "-o", "json", str(bad)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["files"] == 1
    assert [e["code"] for e in out["errors"]] == ["yaml_syntax_error"]


def test_validate_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate"])
    assert info.value.code == 2


def _select(capsys: pytest.CaptureFixture[str], expression: str) -> tuple[int, dict[str, list[dict[str, str]]]]:
    rc = main(["select", "--inventory", CLUSTER, "-o", "json", expression])
    return rc, json.loads(capsys.readouterr().out)


def test_select_json_shape_and_matches(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _select(capsys, 'device.attributes["gpu.gpupolicy.dev"].type == "gpu"')
    assert rc == 0
    assert set(out) == {"matches", "errors"}
    assert out["errors"] == []
    assert {tuple(sorted(m)) for m in out["matches"]} == {("device", "driver", "node", "pool")}
    # the MIG example cluster has two nodes of eight H100s: 16 full GPUs
    assert len(out["matches"]) == 16
    assert {m["node"] for m in out["matches"]} == {"h100-0", "h100-1"}
    assert out["matches"][0] == {"pool": "h100-0", "device": "gpu-0", "driver": "gpu.gpupolicy.dev", "node": "h100-0"}


def test_select_runtime_error_is_per_device_not_false(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _select(capsys, 'device.attributes["gpu.gpupolicy.dev"].profile == "1g.10gb"')
    assert rc == 1
    assert len(out["errors"]) == 16  # full GPUs have no profile attribute: "no such key"
    assert all(e["code"] == "cel_runtime_error" and "profile" in e["message"] for e in out["errors"])
    assert out["errors"][0]["device"] == "h100-0/gpu-0"
    assert out["matches"] and all("-mig-1g10gb-" in m["device"] for m in out["matches"])
    rc, guarded = _select(
        capsys,
        '"profile" in device.attributes["gpu.gpupolicy.dev"] && '
        'device.attributes["gpu.gpupolicy.dev"].profile == "1g.10gb"',
    )
    assert rc == 0 and guarded["errors"] == [] and guarded["matches"] == out["matches"]


def test_select_compile_error_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", "--inventory", CLUSTER, "device.driver =="]) == 1
    assert "cel_compile_error" in capsys.readouterr().err
