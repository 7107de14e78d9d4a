"""Time ``gpupolicy.policy.cluster.render`` (policy + cluster description -> DeviceClasses and ResourceSlices).

Run: ``python benchmarks/render_bench.py`` (from the repository root). Prints the median of 3 runs.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from gpupolicy.policy.cluster import Cluster, load_cluster, render
from gpupolicy.policy.policyfile import load_policy

ROOT = Path(__file__).resolve().parents[1]


def cluster(nodes: int, model: str, mig: str) -> Cluster:
    text = (
        "apiVersion: gpupolicy.dev/v1alpha1\nkind: ClusterDescription\nmetadata: {name: bench}\nspec:\n"
        f"  nodes:\n  - namePrefix: n\n    count: {nodes}\n    gpus: {{model: {model}, count: 8}}\n    mig: {mig}\n"
    )
    return load_cluster(text, "bench.yaml")


def main() -> None:
    policy = load_policy((ROOT / "examples/mig-inference/policy.yaml").read_text(), "policy.yaml")
    for nodes, model, mig in [(10, "H100-80GB", "dynamic"), (100, "H100-80GB", "dynamic"), (1000, "T4", "disabled")]:
        c = cluster(nodes, model, mig)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            _, slices = render(policy, c)
            times.append(time.perf_counter() - start)
        devices = sum(len(s.devices) for s in slices)
        median = statistics.median(times)
        print(
            f"{nodes:>5} nodes x 8 {model:<10} mig={mig:<8} {len(slices):>5} slices {devices:>6} devices "
            f"median {median:6.2f} s  ({median / devices * 1e6:5.0f} us/device)"
        )
    text = (ROOT / "examples/mixed-fleet-quotas/policy.yaml").read_text()
    start = time.perf_counter()
    for _ in range(20):
        load_policy(text, "policy.yaml")
    print(f"load_policy(mixed-fleet-quotas): {(time.perf_counter() - start) / 20 * 1000:.1f} ms")


if __name__ == "__main__":
    main()
