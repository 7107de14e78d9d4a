"""How much of each physical GPU a set of DRA allocations uses (for ``simulate --inventory``).

A physical GPU is a :attr:`gpupolicy.solver.problem.Device.gpu_key`: the shared counter set of a dynamic MIG
GPU, the parent of static MIG devices, or a plain device. Its use is the fraction of its dominant
resource in use:

- counter-set GPUs: the largest ``used / limit`` over the set's counters, leaving out per-slot
  counters with limit 1 (a MIG memory slice would make any partition look like a full GPU);
- other GPUs: per capacity name, what is held (the whole capacity of an exclusive device in use,
  the consumed amount of a shared one) over the sum of the GPU's devices' capacities, largest
  fraction wins; a GPU whose devices publish no capacity counts devices in use over devices.

A GPU is *fully used* at 1, *idle* at 0, *partly used* in between; the allocation % is the mean use
over all GPUs. :class:`GpuUse` updates incrementally as results are added, so a replay can record
the curve after every arrival.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from gpupolicy.solver.problem import DeviceIndex, DeviceResult, Problem
from gpupolicy.solver.state import Usage

Unit = tuple[object, ...]
FULL = 1.0 - 1e-9


@dataclass(frozen=True)
class GpuCounts:
    full: int
    partial: int
    idle: int

    @property
    def total(self) -> int:
        return self.full + self.partial + self.idle

    def to_json(self) -> dict[str, int]:
        return {"full": self.full, "partial": self.partial, "idle": self.idle, "total": self.total}


class GpuUse:
    """Per-GPU use fractions over a :class:`Usage` (existing allocations first)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.usage = Usage.from_existing(problem)
        self.devices: dict[Unit, list[DeviceIndex]] = defaultdict(list)
        for d, device in enumerate(problem.devices):
            self.devices[device.gpu_key].append(DeviceIndex(d))
        self.totals = {unit: self._totals(ds) for unit, ds in self.devices.items()}
        self.fraction = {unit: self._fraction(unit) for unit in self.devices}
        self.sum = sum(self.fraction.values())

    def _totals(self, devices: list[DeviceIndex]) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for d in devices:
            for name, cap in self.problem.devices[d].capacity.items():
                totals[name] += cap.value
        return {name: value for name, value in totals.items() if value > 0}

    def _fraction(self, unit: Unit) -> float:
        if unit[0] == "counters":
            return self._counter_fraction(unit)
        devices = self.devices[unit]
        totals = self.totals[unit]
        if not totals:
            return sum(1 for d in devices if self.usage.in_use(d)) / len(devices)
        held: dict[str, int] = defaultdict(int)
        for d in devices:
            device = self.problem.devices[d]
            if not self.usage.in_use(d):
                continue
            for name, cap in device.capacity.items():
                held[name] += self.usage.capacity.get((d, name), 0) if device.multi_allocatable else cap.value
        return min(1.0, max((held[name] / total for name, total in totals.items()), default=0.0))

    def _counter_fraction(self, unit: Unit) -> float:
        driver, pool, name = (str(x) for x in unit[1:4])
        counter_set = self.problem.counter_index.get((driver, pool, name))
        if counter_set is None:
            return 0.0
        limits = {k: v for k, v in counter_set.counters.items() if v > 1}
        if not limits:
            limits = {k: v for k, v in counter_set.counters.items() if v > 0}
        used = [self.usage.counters.get((driver, pool, name, k), 0) / v for k, v in limits.items()]
        return min(1.0, max(used, default=0.0))

    def add(self, results: Iterable[DeviceResult]) -> None:
        listed = list(results)
        self.usage.add(listed)
        for unit in {self.problem.devices[r.device].gpu_key for r in listed}:
            new = self._fraction(unit)
            self.sum += new - self.fraction[unit]
            self.fraction[unit] = new

    @property
    def allocation(self) -> float:
        """Mean use over all GPUs, in %."""
        return 100.0 * self.sum / len(self.fraction) if self.fraction else 0.0

    def counts(self) -> GpuCounts:
        full = sum(1 for f in self.fraction.values() if f >= FULL)
        idle = sum(1 for f in self.fraction.values() if f <= 0.0)
        return GpuCounts(full, len(self.fraction) - full - idle, idle)
