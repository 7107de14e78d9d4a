"""Leader election on a Lease (fake clock, in-memory API), the metrics exposition and endpoint, the CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gpupolicy.plugin.controller.leader import LeaderElector
from gpupolicy.plugin.controller.metrics import Metrics
from gpupolicy.plugin.kube import Obj, Unreachable
from gpupolicy.plugin.metrics import MetricsServer
from tests.plugin.controller.fakeapi import REPO, FakeApi
from tests.scrape import fetch, parse


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


def test_last_error_tells_an_outage_from_another_holder() -> None:
    api, clock = FakeApi(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew() and a.last_error is None
    assert not b.try_acquire_or_renew() and b.last_error is None, "held by a: no error"

    def down(kind: str, namespace: str | None, name: str) -> Obj:
        raise Unreachable("connection refused")

    api.get = down  # type: ignore[method-assign]
    assert not b.try_acquire_or_renew() and isinstance(b.last_error, Unreachable)


def test_metrics_endpoint_serves_the_registry_with_prometheus_client() -> None:
    metrics = Metrics()
    metrics.pending_pods.set(3)
    metrics.is_leader.set(1)
    metrics.placed_pods.inc(2)
    metrics.placed_claims.inc(4)
    metrics.solved(0.25)
    metrics.unplaced.set({("counters_exhausted",): 1, ('odd"reason',): 2})
    server = MetricsServer(metrics.registry, "127.0.0.1:0")
    try:
        text, content_type = fetch(server.url)
        assert content_type.startswith("text/plain; version=0.0.4")
        with urllib.request.urlopen(server.url.replace("/metrics", "/healthz"), timeout=5) as response:
            assert response.read() == b"ok\n"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(server.url.replace("/metrics", "/nothing"), timeout=5)
    finally:
        server.close()
    samples = parse(text)
    assert samples("gpupolicy_controller_pending_pods") == 3
    assert samples("gpupolicy_controller_is_leader") == 1
    assert samples("gpupolicy_controller_placed_pods_total") == 2
    assert samples("gpupolicy_controller_placed_claims_total") == 4
    assert samples("gpupolicy_controller_conflicts_total") == 0
    assert samples("gpupolicy_controller_solve_seconds_count") == 1
    assert samples("gpupolicy_controller_solve_seconds_sum") == 0.25
    assert samples("gpupolicy_controller_last_solve_seconds") == 0.25
    assert samples("gpupolicy_controller_unplaced_pods", reason="counters_exhausted") == 1
    assert samples("gpupolicy_controller_unplaced_pods", reason='odd"reason') == 2
    assert 'gpupolicy_controller_unplaced_pods{reason="odd\\"reason"} 2.0' in text.splitlines()
    assert "# TYPE gpupolicy_controller_placed_pods_total counter" in text.splitlines()
    assert samples.types["gpupolicy_controller_solve_seconds"] == "summary"
    assert samples("process_start_time_seconds") > 0 and "python_info" in samples.names()
    metrics.unplaced.set({})
    assert not [n for n, _ in parse(metrics.render()).values if n == "gpupolicy_controller_unplaced_pods"]


def test_a_misspelled_metric_is_an_error_and_instances_do_not_share_values() -> None:
    metrics = Metrics()
    with pytest.raises(AttributeError):
        metrics.pendng_pods.set(7)  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        metrics.pendng_pods = 7  # type: ignore[attr-defined]
    other = Metrics()
    other.placed_pods.inc()
    assert parse(metrics.render())("gpupolicy_controller_placed_pods_total") == 0


def test_cli_help_and_usage_errors() -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gpupolicy.plugin.cli.main", "controller", *args],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    shown = cli("run", "--help")
    assert shown.returncode == 0 and "--batch-window" in shown.stdout and "--policy" in shown.stdout
    assert "--log-format" in shown.stdout and "--log-level" in shown.stdout and "--metrics-address" in shown.stdout
    bad_address = cli("run", "--metrics-address", "nowhere", "--kubeconfig", "/nonexistent")
    assert bad_address.returncode == 2 and "HOST:PORT" in bad_address.stderr
    assert cli("run", "--log-format", "xml", "--kubeconfig", "/nonexistent").returncode == 2
    assert cli("run", "--batch-window", "-1", "--kubeconfig", "/nonexistent").returncode == 2
    assert cli().returncode == 2


def test_once_against_an_unreachable_api_server_reports_the_error_and_fails(tmp_path: Path) -> None:
    """Not "another replica holds the Lease" and exit 0: the API error, and a non-zero exit, without a traceback."""
    with socket.socket() as sock:  # a port nothing listens on: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))

    def once(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gpupolicy.plugin.cli.main", "controller", "run", "--once",
             "--metrics-address", "", *args],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    for extra in ([], ["--no-leader-election"]):
        done = once("--kubeconfig", str(kubeconfig), *extra)
        assert done.returncode == 1, (extra, done.returncode, done.stderr)
        assert "another replica holds the Lease" not in done.stderr
        assert "Traceback" not in done.stderr
        lines = [json.loads(line) for line in done.stderr.splitlines()]
        failed = [line for line in lines if line["level"] == "error"]
        assert failed and "unreachable" in failed[-1]["error"], (extra, done.stderr)
    missing = once("--kubeconfig", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr and "nowhere" in missing.stderr
