"""Scenario 5: ``gpupolicy solve --kubeconfig FILE`` reads the live ResourceSlices, the pending ResourceClaims and the
existing allocations from the cluster instead of files (a dry run against a running cluster).

Runs once ``gpupolicy solve`` has a ``--kubeconfig`` option; until then it is skipped with that reason."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cleanup
from tests.e2e.controlplane import ControlPlane, Process
from tests.e2e.examples import run_cli
from tests.e2e.kube import Kube, create_node
from tests.e2e.test_scheduler_vs_solver import STRANDS, claims_in, pod_for, renamed_slices, wait_decided

pytestmark = pytest.mark.testbed


def solve_has_kubeconfig() -> bool:
    out = run_cli("solve", "--help")
    return out.returncode == 0 and "--kubeconfig" in out.stdout


needs_live_solve = pytest.mark.skipif(
    not solve_has_kubeconfig(),
    reason="`gpupolicy solve --kubeconfig` is not implemented yet (solver issue, scenario 5)",
)


def live_solve(plane: ControlPlane, *extra: str) -> dict[str, Any]:
    out = run_cli(
        "solve", "--kubeconfig", str(plane.kubeconfig), "--policy", str(STRANDS.policy_file()),
        "-o", "json", "--no-timing", "--workers", "1", "--seed", "1", *extra,
    )  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def outcome(result: dict[str, Any], namespace: str) -> tuple[dict[str, str], set[str]]:
    """(placed claim -> device, unplaced claims) for the claims of ``namespace``."""
    placed = {
        c["metadata"]["name"]: c["status"]["allocation"]["devices"]["results"][0]["device"]
        for c in result["claims"]
        if c["metadata"]["namespace"] == namespace and (c.get("status") or {}).get("allocation")
    }
    unplaced = {u["claim"].split("/", 1)[1] for u in result["unplaced"] if u["claim"].startswith(f"{namespace}/")}
    return placed, unplaced


@needs_live_solve
def test_live_solve_reads_slices_pending_claims_and_allocations(
    kube: Kube,
    cleanup: Cleanup,
    namespace: str,
    kube_cluster: ControlPlane,
    kube_scheduler: Process,
    tmp_path: Path,
) -> None:
    node = f"h100-{uuid.uuid4().hex[:6]}"
    cleanup.track(create_node(kube, node))
    for obj in [*STRANDS.device_classes(), *renamed_slices(STRANDS.slices(), node)]:
        cleanup.create(obj)
    three_g, four_g = claims_in(STRANDS, namespace)
    cleanup.create(three_g)
    cleanup.create(four_g)

    # Both pending: the solver, seeing them together, places both on the live slices.
    placed, unplaced = outcome(live_solve(kube_cluster), namespace)
    assert set(placed) == {"a-three-g", "b-four-g"} and not unplaced
    assert all(device.startswith("gpu-0-mig-") for device in placed.values())

    # The scheduler allocates the 3g claim first-fit (memory slots 0-3); a live solve must respect that allocation.
    cleanup.create(pod_for(three_g, node))
    wait_decided(kube, namespace, three_g)
    placed, unplaced = outcome(live_solve(kube_cluster), namespace)
    assert "b-four-g" in unplaced
    assert "b-four-g" not in placed
