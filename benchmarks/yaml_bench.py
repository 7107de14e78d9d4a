"""Reading located YAML: libyaml's parser (what ``parse_yaml`` uses) against PyYAML's pure-Python one.

Generates N ResourceSlices (one per node, 8 GPUs each) as ``kubectl get -o yaml`` would print a
List, then times ``gpupolicy.policy.yamlsrc.parse_yaml`` with each loader in the same run. Prints medians.

    python benchmarks/yaml_bench.py [--slices 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import yaml

from gpupolicy.policy import yamlsrc


def make_text(slices: int) -> str:
    items = []
    for n in range(slices):
        devices = [
            {
                "name": f"gpu-{i}",
                "attributes": {
                    "type": {"string": "gpu"},
                    "productName": {"string": "NVIDIA H100 80GB HBM3"},
                    "uuid": {"string": f"GPU-{n:05d}-{i}"},
                    "driverVersion": {"version": "550.54.15"},
                    "index": {"int": i},
                },
                "capacity": {"memory": {"value": "80Gi"}},
            }
            for i in range(8)
        ]
        items.append(
            {
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceSlice",
                "metadata": {"name": f"node-{n}-gpu"},
                "spec": {
                    "driver": "gpu.gpupolicy.dev",
                    "nodeName": f"node-{n}",
                    "pool": {"name": f"node-{n}", "generation": 1, "resourceSliceCount": 1},
                    "devices": devices,
                },
            }
        )
    return str(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))


def timed(loader: type[yaml.SafeLoader], text: str, runs: int) -> float:
    yamlsrc._Loader = loader
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        docs = yamlsrc.parse_yaml(text, "bench.yaml")
        times.append(time.perf_counter() - start)
    assert docs
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    text = make_text(args.slices)
    original = yamlsrc._Loader
    fast = timed(getattr(yaml, "CSafeLoader", yaml.SafeLoader), text, args.runs)
    slow = timed(yaml.SafeLoader, text, args.runs)
    yamlsrc._Loader = original
    print(f"{args.slices} slices, {len(text) / 1e6:.1f} MB of YAML, median of {args.runs} runs")
    print(f"libyaml (CSafeLoader): {fast:.2f} s")
    print(f"pure Python (SafeLoader): {slow:.2f} s")
    print(f"speed-up: {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
