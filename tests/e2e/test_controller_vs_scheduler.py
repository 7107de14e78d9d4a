"""benchmarks/controller_vs_scheduler.py at a tiny shape, so it cannot rot: both paths bind every pod, the numbers the
report promises are there, the controller's own writes are counted, and nothing it started outlives it (a finished
run, and one interrupted with Ctrl-C half-way)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.controlplane import REPO

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

SCRIPT = REPO / "benchmarks" / "controller_vs_scheduler.py"
TINY = ["--nodes", "3", "--devices", "2", "--pods", "6", "--stall", "20"]


def bench(testbed_bin: Path, tmp: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "GPUPOLICY_TESTBED_BIN": str(testbed_bin), "TMPDIR": str(tmp)}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args], cwd=REPO, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def survivors(tmp: Path) -> list[str]:
    """Command lines of processes still running that name the run's temp folder (etcd, apiserver, controller...)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(tmp) in cmdline:
            found.append(cmdline)
    return found


def test_both_paths_place_every_pod_and_clean_up(testbed_bin: Path, tmp_path: Path) -> None:
    proc = bench(testbed_bin, tmp_path, *TINY, "-o", "json")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out)
    for path in ("scheduler", "controller"):
        row = report[path]
        assert (row["bound"], row["unplaced"], row["unallocated_claims"]) == (6, 0, 0), (path, row)
        assert row["pods_per_s"] > 0 and 0 < row["bound_p50_s"] <= row["bound_p99_s"], row
        assert row["double_allocated"] == []
        # every pod was created by us, got a claim from the claim controller and a binding from the scheduler
        for write in ("POST pods", "POST resourceclaims", "POST pods/binding"):
            assert row["writes"][write] == 6, (path, write, row["writes"])
    assert "PUT pods" not in report["scheduler"]["writes"]  # nobody ungates: the pods came ungated
    assert report["controller"]["writes"]["PUT pods"] == 6  # the controller removed each gate once
    assert report["controller"]["writes_per_pod"] > report["scheduler"]["writes_per_pod"]
    assert report["controller"]["controller"]["placed_pods_total"] == 6
    assert report["ratio"] == round(report["controller"]["pods_per_s"] / report["scheduler"]["pods_per_s"], 2)
    assert list(tmp_path.iterdir()) == [] and survivors(tmp_path) == []


def test_ctrl_c_stops_everything_it_started(testbed_bin: Path, tmp_path: Path) -> None:
    proc = bench(testbed_bin, tmp_path, *TINY, "--paths", "controller")
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob("gpupolicy-cvs-controller-*/logs/controller.log")):  # mid-run, controller up
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    assert survivors(tmp_path)  # the control plane and the controller run under the temp folder
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err
    assert list(tmp_path.iterdir()) == [] and survivors(tmp_path) == []
