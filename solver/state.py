"""What is in use: devices, consumable capacity and shared counters, updated as claims are placed.

Used by the baselines (which place claims one at a time) and by the model (which fixes existing
allocations). Admin-access results neither need a free device nor make one busy, as in Kubernetes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from gpupolicy.solver.problem import Alternative, ClaimKey, DeviceIndex, DeviceResult, Problem

CounterKey = tuple[str, str, str, str]  # driver, pool, counter set, counter


@dataclass
class Usage:
    problem: Problem
    holders: dict[DeviceIndex, int] = field(default_factory=lambda: defaultdict(int))  # non-admin results
    capacity: dict[tuple[DeviceIndex, str], int] = field(default_factory=lambda: defaultdict(int))
    counters: dict[CounterKey, int] = field(default_factory=lambda: defaultdict(int))

    @classmethod
    def from_existing(cls, problem: Problem, skip: Collection[ClaimKey] = ()) -> Usage:
        """What the existing allocations hold, but those in ``skip`` (allocations a solve may give up)."""
        usage = cls(problem)
        for existing in problem.existing:
            if existing.claim not in skip:
                usage.add(existing.results)
        return usage

    def copy(self) -> Usage:
        out = Usage(self.problem)
        out.holders.update(self.holders)
        out.capacity.update(self.capacity)
        out.counters.update(self.counters)
        return out

    def in_use(self, d: DeviceIndex) -> bool:
        return self.holders.get(d, 0) > 0

    def device_counters(self, d: DeviceIndex) -> dict[CounterKey, int]:
        device = self.problem.devices[d]
        return {
            (device.driver, device.pool, use.counter_set, name): amount
            for use in device.consumes
            for name, amount in use.counters.items()
        }

    def counters_fit(self, d: DeviceIndex) -> bool:
        if self.in_use(d):
            return True
        for key, amount in self.device_counters(d).items():
            counter_set = self.problem.counter_index.get(key[:3])
            limit = counter_set.counters.get(key[3], 0) if counter_set else 0
            if self.counters[key] + amount > limit:
                return False
        return True

    def consumption(self, d: DeviceIndex, alternative: Alternative) -> dict[str, int] | None:
        """What ``alternative`` would take from ``d`` now, or None if it does not fit."""
        device = self.problem.devices[d]
        if alternative.admin_access:
            return {}
        if not device.multi_allocatable:
            if self.in_use(d) or not self.counters_fit(d):
                return None
            return {}
        consumed = alternative.consumed(device)
        if consumed is None:
            return None
        for name, amount in consumed.items():
            if self.capacity[(d, name)] + amount > device.capacity[name].value:
                return None
        if not self.counters_fit(d):
            return None
        return consumed

    def add(self, results: Iterable[DeviceResult]) -> None:
        for result in results:
            if result.admin_access:
                continue
            d = result.device
            if self.holders[d] == 0:
                for key, amount in self.device_counters(d).items():
                    self.counters[key] += amount
            self.holders[d] += 1
            for name, amount in result.consumed.items():
                self.capacity[(d, name)] += amount

    def remove(self, results: Iterable[DeviceResult]) -> None:
        for result in results:
            if result.admin_access:
                continue
            d = result.device
            self.holders[d] -= 1
            if self.holders[d] == 0:
                for key, amount in self.device_counters(d).items():
                    self.counters[key] -= amount
            for name, amount in result.consumed.items():
                self.capacity[(d, name)] -= amount
