"""Benchmark CEL selector evaluation over the OpenB GPU inventory (6,212 GPUs, 1,213 nodes).

Run: ``python benchmarks/cel_bench.py [--runs 5] [--baseline-devices 300]``

Measures, as medians over ``--runs`` runs:

* cold: compile 50 distinct selectors and evaluate each over every GPU (fresh device objects,
  empty caches) with ``Program.evaluate_devices``;
* warm: the same batch again on the same device objects (results cached per device);
* warm-projection: fresh device objects with equal contents (results found by projection key);
* baselines in the same run: our evaluator without any cache (``Program.evaluate`` per device),
  and cel-python 0.5.0's ``InterpretedRunner`` on the selectors it can run.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Callable, Iterator, Sequence

from datafiles import data_file

from gpupolicy.policy import cel
from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.quantity import Quantity
from gpupolicy.policy.semver import Semver

DRIVER = "gpu.nvidia.com"
MODELS = {  # OpenB model code -> (product name, memory, compute capability)
    "P100": ("Tesla P100-PCIE-16GB", "16Gi", "6.0.0"),
    "T4": ("Tesla T4", "15Gi", "7.5.0"),
    "V100M16": ("Tesla V100-SXM2-16GB", "16Gi", "7.0.0"),
    "V100M32": ("Tesla V100-SXM2-32GB", "32Gi", "7.0.0"),
    "G2": ("NVIDIA G2", "24Gi", "8.6.0"),
    "G3": ("NVIDIA G3", "48Gi", "8.9.0"),
    "A10": ("NVIDIA A10", "24Gi", "8.6.0"),
}
DRIVER_VERSIONS = ["535.104.5", "550.54.15", "470.82.1"]


def load_devices() -> list[DeviceView]:
    devices = []
    with data_file("openb/openb_node_list_gpu_node.csv").open() as f:
        for n, row in enumerate(csv.DictReader(f)):
            product, memory, cc = MODELS[row["model"]]
            for index in range(int(row["gpu"])):
                attributes = {
                    "type": "gpu",
                    "productName": product,
                    "brand": "Nvidia",
                    "index": index,
                    "nodeName": row["sn"],
                    "uuid": f"GPU-{n:04d}-{index}",
                    "driverVersion": Semver.parse(DRIVER_VERSIONS[n % len(DRIVER_VERSIONS)]),
                    "cudaComputeCapability": Semver.parse(cc),
                }
                devices.append(DeviceView(DRIVER, {DRIVER: attributes}, {DRIVER: {"memory": Quantity(memory)}}))
    return devices


A = f'device.attributes["{DRIVER}"]'
C = f'device.capacity["{DRIVER}"]'


def selectors() -> list[str]:
    out = [f'device.driver == "{DRIVER}" && {A}.type == "gpu"']
    out += [f'{A}.productName == "{product}"' for product, _, _ in MODELS.values()]
    out += [f'{C}.memory.compareTo(quantity("{m}Gi")) >= 0' for m in (8, 12, 16, 20, 24, 32, 40, 48)]
    out += [f'{A}.driverVersion.compareTo(semver("{v}")) >= 0' for v in ("470.0.0", "535.0.0", "550.0.0")]
    out += [f'{A}.cudaComputeCapability.isGreaterThan(semver("{v}"))' for v in ("6.5.0", "7.2.0", "8.0.0")]
    out += [f'{A}.productName.lowerAscii().matches("{p}")' for p in ("^tesla", "v100", "t4$", "^nvidia g[23]$")]
    out += [f'cel.bind(g, {A}, g.type == "gpu" && g.index < {i})' for i in (1, 2, 4, 8)]
    out += [f'{A}.productName.contains("V100") && {C}.memory.isGreaterThan(quantity("{m}Gi"))' for m in (8, 16, 24)]
    out += [f'"{k}" in {A} && {A}.{k} != ""' for k in ("productName", "brand", "uuid")]
    out += [f'{A}.nodeName.endsWith("{d}")' for d in ("0", "7", "42")]
    out += [f'{A}.nodeName in ["openb-node-0000", "openb-node-0{n}"]' for n in ("100", "777")]
    out += [
        f"{A}.index % 2 == 0 && {C}.memory.asInteger() >= 17179869184",
        f'{A}.productName.split(" ").exists(w, w == "T4")',
        # Kubernetes refuses quantity(string(n) + "Gi"): the size of string(n) is unknown to its cost estimate
        f'["16Gi", "32Gi"].exists(n, {C}.memory == quantity(n))',
        f"has({A}.productName) && {A}.productName.size() > 8",
        f'{A}.driverVersion.major() >= 535 && {A}.type == "gpu"',
        f'sets.contains(["Tesla T4", "NVIDIA A10"], [{A}.productName])',
        f'{A}.brand.upperAscii() == "NVIDIA" && !device.allowMultipleAllocations',
        f'{C}.memory.add(quantity("8Gi")).isGreaterThan(quantity("40Gi"))',
        f'{A}.uuid.startsWith("GPU-00") || {A}.index == 7',
    ]
    assert len(out) == len(set(out)) == 50, len(out)
    return out


Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process)


def timed(fn: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def median(timings: Sequence[Timing] | Iterator[Timing]) -> Timing:
    items = list(timings)
    return statistics.median(t[0] for t in items), statistics.median(t[1] for t in items)


def cold_run(exprs: Sequence[str]) -> Timing:
    devices = load_devices()  # fresh objects: no per-device cache entries
    cel.program._compile_core.cache_clear()  # empty compile and result caches

    def run() -> None:
        for program in [cel.compile_expression(e) for e in exprs]:
            program.evaluate_devices(devices)

    return timed(run)


def report(label: str, t: Timing, decisions: int, note: str = "") -> None:
    print(
        f"{label:<32} wall {t[0] * 1000:9.1f} ms ({decisions / t[0]:11,.0f}/s)   "
        f"cpu {t[1] * 1000:9.1f} ms ({decisions / t[1]:11,.0f}/s){note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline-devices", type=int, default=300)
    args = parser.parse_args()
    exprs = selectors()
    devices = load_devices()
    decisions = len(exprs) * len(devices)
    print(f"{len(devices)} GPUs x {len(exprs)} selectors = {decisions} decisions; {args.runs} runs, medians")

    grammar = timed(lambda: cel.compile_expression("true"))  # one-time lark grammar build
    cold = median(cold_run(exprs) for _ in range(args.runs))
    programs = [cel.compile_expression(e) for e in exprs]
    for p in programs:
        p.evaluate_devices(devices)
    warm = median(timed(lambda: [p.evaluate_devices(devices) for p in programs]) for _ in range(args.runs))
    proj = median(_fresh_equal_devices(programs) for _ in range(args.runs))
    sample = devices[:: max(1, len(devices) // args.baseline_devices)]
    uncached = median(timed(lambda: [[p.evaluate(d) for d in sample] for p in programs]) for _ in range(args.runs))
    scale = decisions / (len(exprs) * len(sample))
    print(f"one-time grammar build at first compile in a process: wall {grammar[0] * 1000:.0f} ms")
    report("cold (compile + evaluate all)", cold, decisions)
    report("warm (same device objects)", warm, decisions)
    report("warm (fresh equal devices)", proj, decisions)
    report("baseline: ours, uncached", (uncached[0] * scale, uncached[1] * scale), decisions,
           f"   [{len(sample)} GPUs, scaled]")  # fmt: skip
    celpy = _celpy_baseline(exprs, sample[:50])
    if celpy is not None:
        n, t = celpy
        report("baseline: cel-python, uncached", (t[0] * decisions / n, t[1] * decisions / n), decisions,
               f"   [{n} decisions, scaled]")  # fmt: skip
    print(f"cold vs uncached (cpu): {uncached[1] * scale / cold[1]:.1f}x faster; "
          f"warm vs uncached (cpu): {uncached[1] * scale / warm[1]:.0f}x faster")  # fmt: skip


def _fresh_equal_devices(programs: Sequence[cel.Program]) -> Timing:
    fresh = load_devices()
    return timed(lambda: [p.evaluate_devices(fresh) for p in programs])


def _celpy_baseline(exprs: Sequence[str], sample: Sequence[DeviceView]) -> tuple[int, Timing] | None:
    """cel-python's interpreter, uncached, on the selectors it can evaluate (no quantity/semver/bind)."""
    import celpy
    from celpy import celtypes

    env = celpy.Environment()
    plain = [e for e in exprs if "quantity" not in e and "semver" not in e and "bind" not in e and "sets." not in e
             and "Version" not in e and "Capability" not in e and "memory" not in e]  # fmt: skip
    activations = [
        {
            "device": celtypes.MapType(
                {
                    celtypes.StringType("driver"): celtypes.StringType(d.driver),
                    celtypes.StringType("allowMultipleAllocations"): celtypes.BoolType(False),
                    celtypes.StringType("attributes"): celpy.json_to_cel(
                        {
                            dom: {k: v if isinstance(v, (str, int)) else str(v) for k, v in m.items()}
                            for dom, m in d.attributes.items()
                        }
                    ),
                }
            )
        }
        for d in sample
    ]
    runners = [r for r in (env.program(env.compile(e)) for e in plain) if _celpy_runs(r, activations)]
    if not runners:
        return None
    elapsed = median(timed(lambda: [[r.evaluate(a) for a in activations] for r in runners]) for _ in range(2))
    return len(runners) * len(activations), elapsed


def _celpy_runs(runner: object, activations: Sequence[object]) -> bool:
    try:
        for activation in activations:
            runner.evaluate(activation)  # type: ignore[attr-defined]
    except Exception:  # cel-python lacks lowerAscii, split, ...: skip those selectors
        return False
    return True


if __name__ == "__main__":
    main()
