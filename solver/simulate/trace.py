"""Traces in the openb CSV formats: the node list and the pod list, as numpy arrays.

Parsing takes text and a file name and returns values; bad rows become located diagnostics.
A pod's GPU request is ``num_gpu x gpu_milli`` with ``gpu_milli`` capped at 1000 (multi-GPU
pods always ask for whole GPUs). ``gpu_spec`` (``V100M16|V100M32``) restricts the GPU model;
it is kept as a bit mask over the cluster's models (0 = any model).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gpupolicy.policy.errors import Diagnostic, DiagnosticError, Location

MILLI = 1000
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Nodes:
    """The cluster: one entry per node, GPUs padded to ``max_gpus`` columns."""

    names: tuple[str, ...]
    cpu: I64
    mem: I64
    gpus: I64
    model: I64  # index into ``models``; -1 for a node without GPUs
    models: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def max_gpus(self) -> int:
        return int(self.gpus.max()) if self.count else 0

    @property
    def total_gpu_milli(self) -> int:
        return int(self.gpus.sum()) * MILLI

    def model_bits(self) -> I64:
        """Each node's model as a one-bit mask (0 for CPU-only nodes)."""
        bits = np.where(self.model >= 0, np.left_shift(1, np.maximum(self.model, 0)), 0)
        return bits.astype(np.int64)


@dataclass(frozen=True)
class Pods:
    """A list of pods (the trace, or an arrival sequence drawn from it)."""

    names: tuple[str, ...]
    cpu: I64
    mem: I64
    num_gpu: I64
    milli: I64  # per-GPU share, 0..1000
    spec: tuple[str, ...]  # the raw gpu_spec text, "" = any model
    spec_mask: I64  # bit mask over Nodes.models; all models when spec is empty

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def gpu_request(self) -> I64:
        """Total GPU milli each pod asks for."""
        return self.num_gpu * self.milli

    def take(self, index: npt.NDArray[np.int64]) -> Pods:
        return Pods(
            names=tuple(self.names[i] for i in index),
            cpu=self.cpu[index],
            mem=self.mem[index],
            num_gpu=self.num_gpu[index],
            milli=self.milli[index],
            spec=tuple(self.spec[i] for i in index),
            spec_mask=self.spec_mask[index],
        )

    def kind(self) -> npt.NDArray[np.str_]:
        """A pod class for failure reports: cpu, share, 1gpu, 2gpu, ..."""
        out = np.where(self.num_gpu == 0, "cpu", np.where(self.milli < MILLI, "share", ""))
        whole = np.char.add(self.num_gpu.astype(str), "gpu")
        return np.where(out == "", whole, out)


def _rows(text: str, filename: str, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        raise DiagnosticError.single(
            "csv_missing_column",
            f"missing column(s) {', '.join(missing)}; expected {', '.join(required)}",
            Location(filename, 1, 1),
        )
    return [(i + 2, row) for i, row in enumerate(reader)]


# The largest value each column takes: GPUs per node or pod as cluster descriptions allow; CPU,
# memory and per-GPU milli far above any real node, and small enough that sums stay exact.
LIMITS = {
    "cpu_milli": 10**9,
    "memory_mib": 10**9,
    "gpu": 64,
    "num_gpu": 64,
    "gpu_milli": 10**6,
}


def _int(row: dict[str, str], key: str, line: int, filename: str, errors: list[Diagnostic]) -> int:
    raw = (row.get(key) or "").strip()
    try:
        value = int(raw)
    except ValueError:
        errors.append(
            Diagnostic("csv_bad_number", f"{key}={raw!r} is not an integer", Location(filename, line, 1, key))
        )
        return 0
    if value < 0:
        errors.append(
            Diagnostic("csv_negative", f"{key}={value} must not be negative", Location(filename, line, 1, key))
        )
    elif value > LIMITS.get(key, 0):
        errors.append(
            Diagnostic(
                "csv_out_of_range",
                f"{key}={value} is more than {LIMITS[key]:,}",
                Location(filename, line, 1, key),
            )
        )
        return 0
    return value


def parse_nodes(text: str, filename: str = "<nodes>") -> Nodes:
    """Parse ``sn,cpu_milli,memory_mib,gpu,model``."""
    errors: list[Diagnostic] = []
    names: list[str] = []
    cols: dict[str, list[int]] = {"cpu_milli": [], "memory_mib": [], "gpu": []}
    model_names: list[str] = []
    for line, row in _rows(text, filename, ("sn", "cpu_milli", "memory_mib", "gpu", "model")):
        names.append(row["sn"])
        for key, values in cols.items():
            values.append(_int(row, key, line, filename, errors))
        model_names.append((row.get("model") or "").strip())
    if errors:
        raise DiagnosticError(errors)
    if not names:
        raise DiagnosticError.single("csv_empty", "the node list has no rows", Location(filename, 1, 1))
    # A GPU node without a model still has GPUs: they serve pods without a gpu_spec (model "").
    models = tuple(sorted({m for m, g in zip(model_names, cols["gpu"]) if g > 0}))
    if len(models) > 62:
        raise DiagnosticError.single(
            "too_many_models", f"{len(models)} GPU models; at most 62", Location(filename, 1, 1)
        )
    index = {m: i for i, m in enumerate(models)}
    model = [index[m] if m in index and g > 0 else -1 for m, g in zip(model_names, cols["gpu"])]
    return Nodes(
        names=tuple(names),
        cpu=np.array(cols["cpu_milli"], dtype=np.int64),
        mem=np.array(cols["memory_mib"], dtype=np.int64),
        gpus=np.array(cols["gpu"], dtype=np.int64),
        model=np.array(model, dtype=np.int64),
        models=models,
    )


def spec_mask(spec: str, models: tuple[str, ...]) -> int:
    """Bit mask of the models a ``gpu_spec`` allows (all models for an empty spec)."""
    wanted = [s for s in spec.split("|") if s]
    if not wanted:
        return (1 << len(models)) - 1
    return sum(1 << i for i, m in enumerate(models) if m in wanted)


def parse_pods(text: str, models: tuple[str, ...], filename: str = "<pods>") -> Pods:
    """Parse ``name,cpu_milli,memory_mib,num_gpu,gpu_milli[,gpu_spec,...]``."""
    errors: list[Diagnostic] = []
    names: list[str] = []
    cols: dict[str, list[int]] = {"cpu_milli": [], "memory_mib": [], "num_gpu": [], "gpu_milli": []}
    specs: list[str] = []
    for line, row in _rows(text, filename, ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")):
        names.append(row["name"])
        for key, values in cols.items():
            values.append(_int(row, key, line, filename, errors))
        specs.append((row.get("gpu_spec") or "").strip())
        if cols["num_gpu"][-1] > 0 and cols["gpu_milli"][-1] == 0:
            errors.append(
                Diagnostic(
                    "pod_zero_gpu_milli", "num_gpu > 0 but gpu_milli = 0", Location(filename, line, 1, "gpu_milli")
                )
            )
        if cols["num_gpu"][-1] > 1 and 0 < cols["gpu_milli"][-1] < MILLI:
            errors.append(
                Diagnostic(
                    "pod_shared_multi_gpu",
                    "a pod asking for several GPUs must ask for whole GPUs (gpu_milli >= 1000)",
                    Location(filename, line, 1, "gpu_milli"),
                )
            )
    if errors:
        raise DiagnosticError(errors)
    if not names:
        raise DiagnosticError.single("csv_empty", "the pod list has no rows", Location(filename, 1, 1))
    num = np.array(cols["num_gpu"], dtype=np.int64)
    milli = np.minimum(np.array(cols["gpu_milli"], dtype=np.int64), MILLI)
    milli = np.where(num == 0, 0, milli)
    return Pods(
        names=tuple(names),
        cpu=np.array(cols["cpu_milli"], dtype=np.int64),
        mem=np.array(cols["memory_mib"], dtype=np.int64),
        num_gpu=num,
        milli=milli,
        spec=tuple(specs),
        spec_mask=np.array([spec_mask(s, models) for s in specs], dtype=np.int64),
    )


def check_replayable(nodes: Nodes, pods: Pods, target: float, nodes_file: str, pods_file: str) -> None:
    """Reject inputs the FGD protocol cannot replay: no GPU to fill, or no GPU demand to scale."""
    if nodes.total_gpu_milli <= 0:
        raise DiagnosticError.single(
            "nodes_no_gpus", "the node list has no GPUs: there is nothing to allocate", Location(nodes_file, 1, 1)
        )
    if target > 0 and int(pods.gpu_request.sum()) == 0:
        raise DiagnosticError.single(
            "pods_no_gpu_demand",
            f"no pod asks for a GPU, so the arrivals cannot be scaled to {target * 100:g}% of the GPU capacity"
            " (--target 0 replays the pod list as it is)",
            Location(pods_file, 1, 1),
        )
