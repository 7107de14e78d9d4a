"""The fragmentation level keeps MIG shapes open: a slice goes where it closes the fewest placements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupolicy.plugin.cli.main import main

POLICY = """\
apiVersion: gpupolicy.dev/v1alpha1
kind: GpuPolicy
metadata: {name: shapes}
spec:
  deviceClasses:
  - name: mig.gpupolicy.dev
    selectors:
    - cel: {expression: 'device.attributes["gpu.gpupolicy.dev"].type == "mig"'}
  sharing:
  - name: h100-dynamic
    mig: {dynamic: true, profiles: [1g.10gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb]}
  objective: OBJECTIVE
  solver: {timeLimitSeconds: 10, workers: 1, seed: 0}
"""
CLUSTER = """\
apiVersion: gpupolicy.dev/v1alpha1
kind: ClusterDescription
metadata: {name: one-h100}
spec:
  nodes:
  - {name: h100-0, gpus: {model: H100-80GB, count: 1}, mig: dynamic}
"""


def claim(name: str, profile: str) -> str:
    return f"""\
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {{name: {name}, namespace: default}}
spec:
  devices:
    requests:
    - name: mig
      exactly:
        deviceClassName: mig.gpupolicy.dev
        selectors:
        - cel: {{expression: 'device.attributes["gpu.gpupolicy.dev"].profile == "{profile}"'}}
"""


def placed(tmp_path: Path, capsys: pytest.CaptureFixture[str], objective: str, *claims: str) -> dict[str, str]:
    (tmp_path / "policy.yaml").write_text(POLICY.replace("OBJECTIVE", objective))
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "claims.yaml").write_text("---\n".join(claims))
    args = ["solve", "-o", "json", "--no-timing"]
    args += ["--policy", str(tmp_path / "policy.yaml"), "--inventory", str(tmp_path / "cluster.yaml")]
    assert main([*args, "--claims", str(tmp_path / "claims.yaml")]) == 0
    doc = json.loads(capsys.readouterr().out)
    return {c["metadata"]["name"]: c["status"]["allocation"]["devices"]["results"][0]["device"] for c in doc["claims"]}


@pytest.mark.parametrize("objective", ["pack", "least-fragmentation"])
def test_a_lone_1g_slice_takes_the_slot_that_closes_fewest_shapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], objective: str
) -> None:
    # Slot 6 closes 1g@6, 3g@4 and 7g@0; every other slot also closes a 2g or the 4g placement.
    assert placed(tmp_path, capsys, objective, claim("one", "1g.10gb")) == {"one": "gpu-0-mig-1g10gb-19-6"}


@pytest.mark.parametrize("objective", ["pack", "least-fragmentation"])
def test_3g_and_1g_leave_a_2g_and_three_1g_placements_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], objective: str
) -> None:
    got = placed(tmp_path, capsys, objective, claim("big", "3g.40gb"), claim("small", "1g.10gb"))
    # 3g at slot 4 and 1g at the edge of slots 0-3 keep four placements open (3g at 0 would keep three).
    assert got["big"] == "gpu-0-mig-3g40gb-9-4"
    assert got["small"] in {"gpu-0-mig-1g10gb-19-0", "gpu-0-mig-1g10gb-19-3"}
