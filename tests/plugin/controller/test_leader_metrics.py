"""Leader election on a Lease (fake clock, in-memory API), the metrics exposition and endpoint, the CLI."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

from gpupolicy.plugin.controller.leader import LeaderElector
from gpupolicy.plugin.controller.metrics import Metrics, serve
from gpupolicy.plugin.kube import Obj, Unreachable
from tests.plugin.controller.fakeapi import REPO, FakeApi


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(api: FakeApi, name: str, clock: Clock) -> LeaderElector:
    return LeaderElector(api, name, lease_duration_s=15, renew_deadline_s=10, clock=clock)


def test_one_leader_at_a_time_and_takeover_only_after_expiry() -> None:
    api, clock_a, clock_b = FakeApi(), Clock(), Clock()
    a, b = elector(api, "a", clock_a), elector(api, "b", clock_b)
    assert a.try_acquire_or_renew() and a.is_leader()
    assert not b.try_acquire_or_renew() and not b.is_leader()
    clock_b.now += 10
    assert not b.try_acquire_or_renew(), "a's lease is not expired for b yet"
    clock_a.now += 12  # a stalls: it did not renew within its deadline and must stop writing
    assert not a.is_leader()
    clock_b.now += 6  # 16 s since b first saw this resourceVersion: expired
    assert b.try_acquire_or_renew() and b.is_leader()
    lease = api.get("leases", "kube-system", "gpupolicy-controller")
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
    assert not a.try_acquire_or_renew(), "a sees b's fresh renewal and stays a follower"


def test_renewals_keep_others_out_whatever_their_clocks_say() -> None:
    api, clock_a, clock_b = FakeApi(), Clock(), Clock()
    a, b = elector(api, "a", clock_a), elector(api, "b", clock_b)
    assert a.try_acquire_or_renew()
    for _ in range(5):
        clock_a.now += 5
        clock_b.now += 5000  # b's clock runs wild: only changes of the Lease matter
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()


def test_racing_for_an_expired_lease_one_wins() -> None:
    api, clock = FakeApi(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    lease: Obj = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "gpupolicy-controller", "namespace": "kube-system"},
        "spec": {"holderIdentity": "dead", "leaseDurationSeconds": 15},
    }
    api.put("leases", lease)
    assert not a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    clock.now += 20
    real_update = api.update

    def interleave(kind: str, obj: Obj, *, status: bool = False) -> Obj:
        api.update = real_update  # type: ignore[method-assign]
        assert b.try_acquire_or_renew()  # b writes between a's read and a's write
        return real_update(kind, obj, status=status)

    api.update = interleave  # type: ignore[method-assign]
    assert not a.try_acquire_or_renew(), "a's write carries a stale resourceVersion"
    assert b.is_leader() and not a.is_leader()


def test_release_lets_another_replica_in_at_once() -> None:
    api, clock = FakeApi(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew()
    a.release()
    assert not a.is_leader()
    assert b.try_acquire_or_renew()


def test_unreachable_api_keeps_leadership_only_until_the_deadline() -> None:
    api, clock = FakeApi(), Clock()
    a = elector(api, "a", clock)
    assert a.try_acquire_or_renew()

    def down(kind: str, namespace: str | None, name: str) -> Obj:
        raise Unreachable("connection refused")

    api.get = down  # type: ignore[method-assign]
    clock.now += 5
    assert a.try_acquire_or_renew(), "within the renew deadline"
    clock.now += 6
    assert not a.try_acquire_or_renew() and not a.is_leader()


def test_metrics_exposition_and_endpoint() -> None:
    metrics = Metrics()
    metrics.update(pending_pods=3, leader=1)
    metrics.add(placed_pods=2, placed_claims=4)
    metrics.solved(0.25)
    metrics.set_unplaced({"counters_exhausted": 1, 'odd"reason': 2})
    text = metrics.render()
    for line in (
        "gpupolicy_controller_pending_pods 3",
        "gpupolicy_controller_placed_claims_total 4",
        "gpupolicy_controller_solve_seconds_count 1",
        "gpupolicy_controller_solve_seconds_sum 0.250000",
        'gpupolicy_controller_unplaced_pods{reason="counters_exhausted"} 1',
        'gpupolicy_controller_unplaced_pods{reason="odd\\"reason"} 2',
        "# TYPE gpupolicy_controller_placed_pods_total counter",
    ):
        assert line in text.splitlines()
    server = serve(metrics, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert "gpupolicy_controller_pending_pods 3" in response.read().decode()
    finally:
        server.shutdown()
        server.server_close()


def test_cli_help_and_usage_errors() -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gpupolicy.plugin.cli.main", "controller", *args],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    shown = cli("run", "--help")
    assert shown.returncode == 0 and "--batch-window" in shown.stdout and "--policy" in shown.stdout
    assert cli("run", "--batch-window", "-1", "--kubeconfig", "/nonexistent").returncode == 2
    assert cli().returncode == 2
