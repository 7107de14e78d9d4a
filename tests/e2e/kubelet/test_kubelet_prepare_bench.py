"""benchmarks/kubelet_prepare.py at a tiny size (2 shared pods, one wave) against the real kubelet, so the script
cannot rot; and its reading of the kubelet's log, without a kubelet."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.e2e.controlplane import REPO, ControlPlane
from tests.e2e.kube import Kube

BENCH = REPO / "benchmarks" / "kubelet_prepare.py"

# Lines of a kubelet v1.37.2 at --v=4 as the benchmark reads them (its endpoint shortened, CDI IDs left out).
PLUGIN = 'logger="dra-plugin" driverName="gpu.gpupolicy.dev" endpoint="/p/dra.sock"'
MIG, WHOLE, SHARED = (
    "eb0d49e6-d885-4ee9-a8a6-486a68101ffa",
    "dcb317da-b6b7-4de0-b854-50a51de9ca9f",
    "1c94eb57-84fd-40c7-b552-63fab2019262",
)


def _line(time: str, source: str, message: str) -> str:
    return f"I1206 {time}   11439 {source}] {message}"


def _processing(time: str, pod: str) -> str:
    return _line(time, "manager.go:286", f'"Processing resource" logger="dra-manager" pod="x/{pod}" podClaim="gpu"')


def _calling(time: str, uid: str, claim: str) -> str:
    request = f'request="claims:{{namespace:\\"x\\" uid:\\"{uid}\\" name:\\"{claim}\\"}}"'
    return _line(time, "dra_plugin.go:97", f'"Calling NodePrepareResources rpc" {PLUGIN} {request}')


def _done(time: str, uid: str | None) -> str:
    device = 'devices:{request_names:\\"gpu\\" pool_name:\\"n1\\"}'
    if uid is None:
        response = 'response=null err="rpc error: code = DeadlineExceeded"'
    else:
        response = f'response="claims:{{key:\\"{uid}\\" value:{{{device}}}}}" err=null'
    return _line(time, "dra_plugin.go:116", f'"Done calling NodePrepareResources rpc" {PLUGIN} {response}')


LOG = "\n".join(
    [
        _processing("22:04:19.768280", "pod-mig"),
        _calling("22:04:19.781146", MIG, "pod-mig-gpu-xkqxk"),
        _processing("22:04:19.790698", "pod-whole"),
        _calling("22:04:19.806052", WHOLE, "pod-whole-gpu-mdsm4"),
        _done("22:04:19.831701", MIG),
        _processing("22:04:19.835452", "pod-mig"),  # its next sync: prepared already, no call
        _done("22:04:19.856259", WHOLE),
        _calling("22:04:20.000000", SHARED, "pod-shared-gpu-zh69s"),  # no "Processing resource" seen for it
        _done("22:04:20.100000", None),  # failed: no answer to pair
    ]
)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubelet_prepare_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_calls_are_paired_by_claim_uid_and_unanswered_ones_left_out(bench: ModuleType) -> None:
    calls, before = bench.kubelet_calls(LOG)
    assert calls == [pytest.approx(0.050555, abs=1e-5), pytest.approx(0.050207, abs=1e-5)]
    # from the pod's latest "Processing resource" to its call; the later one of pod-mig is its next sync
    assert before == [pytest.approx(0.012866, abs=1e-5), pytest.approx(0.015354, abs=1e-5)]


def test_waves_never_exceed_the_capacity(bench: ModuleType) -> None:
    assert bench.waves(64, 8) == [8] * 8
    assert bench.waves(64, 56) == [56, 8]
    assert bench.waves(2, 64) == [2]
    cases = bench.make_cases(64)
    assert [cases[name].capacity for name in ("exclusive", "mig", "shared")] == [8, 56, 64]


@pytest.mark.testbed
@pytest.mark.kubelet
def test_two_shared_pods_through_the_real_kubelet(
    bench: ModuleType, node_plane: ControlPlane, node_kube: Kube, mixed_classes: list[str], tmp_path: Path
) -> None:
    result = bench.run_case(node_plane, node_kube, bench.make_cases(2)["shared"], 2, tmp_path)
    assert result["waves"] == [2]
    assert (result["prepare_calls"], result["prepare_errors"], result["prepare_log_calls"]) == (2, 0, 2)
    low, high = result["prepare_p99_bucket_ms"]
    assert low <= result["prepare_p99_ms"] <= high
    assert 0 < result["prepare_log_p50_ms"] <= result["prepare_log_p99_ms"] <= result["prepare_log_max_ms"]
    assert 0 < result["running_p50_s"] <= result["running_p99_s"] < 60
    assert result["plugin_summary"].startswith("2 calls")
