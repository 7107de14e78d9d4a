"""The plugin's metrics object: typed attributes, published devices by pool and type, buckets for 1 ms to 10 s."""

from __future__ import annotations

import pytest

from gpupolicy.plugin.cli.main import main
from gpupolicy.plugin.kubelet.metrics import BUCKETS, ErrorCode, PluginMetrics
from tests.scrape import parse


def _slice(pool: str, *types: str) -> dict[str, object]:
    devices = [{"name": f"d{i}", "attributes": {"type": {"string": t}}} for i, t in enumerate(types)]
    return {"spec": {"pool": {"name": pool}, "devices": devices}}


def test_a_misspelled_metric_is_an_error() -> None:
    metrics = PluginMetrics()
    with pytest.raises(AttributeError):
        metrics.prepare_second.observe(0.01)  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        metrics.prepare_second = metrics.prepare_seconds  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        ErrorCode("claim_unreadabel")


def test_published_devices_replace_the_last_count() -> None:
    metrics = PluginMetrics()
    metrics.published([_slice("node-a", "gpu", "gpu"), _slice("node-a", "mig", "mig", "mig", "gpu"), _slice("node-a")])
    samples = parse(metrics.render())
    assert samples("gpupolicy_plugin_published_devices", pool="node-a", type="gpu") == 3
    assert samples("gpupolicy_plugin_published_devices", pool="node-a", type="mig") == 3
    metrics.published([_slice("node-a", "gpu")])
    samples = parse(metrics.render())
    assert samples("gpupolicy_plugin_published_devices", pool="node-a", type="gpu") == 1
    with pytest.raises(KeyError):
        samples("gpupolicy_plugin_published_devices", pool="node-a", type="mig")


def test_histograms_and_error_counter() -> None:
    metrics = PluginMetrics()
    assert BUCKETS[0] == 0.001 and BUCKETS[-1] == 10 and 0.02 in BUCKETS
    metrics.prepare_seconds.observe(0.015)
    metrics.failed("prepare", ErrorCode.DEVICE_IN_USE)
    samples = parse(metrics.render())
    assert samples("gpupolicy_plugin_prepare_duration_seconds_bucket", le="0.01") == 0
    assert samples("gpupolicy_plugin_prepare_duration_seconds_bucket", le="0.02") == 1
    assert samples("gpupolicy_plugin_prepare_duration_seconds_count") == 1
    assert samples("gpupolicy_plugin_errors_total", operation="prepare", code="device_in_use") == 1
    assert samples.types["gpupolicy_plugin_unprepare_duration_seconds"] == "histogram"
    assert "process_cpu_seconds_total" in samples.names() and "python_info" in samples.names()


def test_plugin_run_checks_its_logging_and_metrics_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plugin", "run", "--metrics-address", "nowhere", "--kubeconfig", "/nonexistent"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    monkeypatch.setenv("GPUPOLICY_LOG_LEVEL", "loud")  # the chart's logLevel
    assert main(["plugin", "run", "--kubeconfig", "/nonexistent"]) == 2
    assert "GPUPOLICY_LOG_LEVEL" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plugin", "run", "--log-format", "xml"])
    with pytest.raises(SystemExit):
        main(["plugin", "run", "--help"])
    shown = capsys.readouterr().out
    assert "--metrics-address" in shown and "--log-format" in shown and "--log-level" in shown
