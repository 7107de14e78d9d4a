"""Physical GPUs and how full they are after a solve: the per-node map and the summary numbers.

A *GPU* (unit) is a shared counter set (a dynamic-MIG or partitionable GPU and every device carved
from it), else the devices with the same ``parentUUID`` (static MIG), else one device. Its used
fraction is, for a MIG GPU, the smaller of memory slots held ÷ slots (static MIG without slot numbers:
instances held ÷ instances) and compute slices held ÷ the GPU's compute slices (see ``mig_slices``), so
it is full only when every memory slot and every compute slice is used: two 3g.40gb on an H100 hold all
8 slots but 6 of 7 slices, 6/7 used; for a shared device, the largest consumed ÷ capacity; otherwise 1
when allocated. *Fragmentation* is the idle fraction summed over partly used GPUs: capacity stranded in
shapes that whole-GPU demand cannot use.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from gpupolicy.solver.mig_slices import device_compute, gpu_compute_total
from gpupolicy.solver.problem import ClaimKey, DeviceIndex, DeviceResult, Problem
from gpupolicy.solver.result import Solution


@dataclass
class Unit:
    key: tuple[str, ...]
    node: str
    name: str
    devices: list[DeviceIndex] = field(default_factory=list)
    slots: int = 0  # MIG memory slots (0: not partitionable by slots)
    compute: int = 0  # MIG compute slices (0: not a MIG GPU)
    shared: bool = False


@dataclass
class UnitUse:
    holders: list[ClaimKey] = field(default_factory=list)
    slot_holders: list[ClaimKey | None] = field(default_factory=list)
    fraction: float = 0.0
    compute_used: int = 0  # MIG compute slices held
    share_text: str = ""

    @property
    def state(self) -> str:
        if self.fraction <= 0 and not self.holders:
            return "idle"
        return "full" if self.fraction >= 0.999 else "partial"


@dataclass(frozen=True)
class Summary:
    strategy: str
    status: str
    proven_optimal: bool
    claims: int
    placed: int
    weight_total: int
    weight_placed: int
    gpus: int
    full: int
    partial: int
    idle: int
    fragmentation: float
    wall_s: float


def _slot_indices(problem: Problem, d: DeviceIndex) -> list[int]:
    out = []
    device = problem.devices[d]
    names = [n for use in device.consumes for n in use.counters] + list(device.capacity)
    for name in names:
        tail = name.rsplit("/", 1)[-1]
        for prefix in ("memory-slice-", "memorySlice"):
            if tail.startswith(prefix) and tail[len(prefix) :].isdigit():
                out.append(int(tail[len(prefix) :]))
    return sorted(set(out))


def gpu_units(problem: Problem) -> list[Unit]:
    units: dict[tuple[str, ...], Unit] = {}
    for i, device in enumerate(problem.devices):
        d = DeviceIndex(i)
        key = device.gpu_key
        if key[0] == "counters":
            name = key[3].removesuffix("-counter-set").removesuffix("-counters")
        elif key[0] == "parent":
            name = device.name.split("-mig-", 1)[0]
        else:
            name = device.name
        unit = units.get(key)
        if unit is None:
            unit = Unit(key, device.node_name or "*", name)
            units[key] = unit
        unit.devices.append(d)
        unit.shared = unit.shared or device.multi_allocatable
    for unit in units.values():
        slots = {s for d in unit.devices for s in _slot_indices(problem, d)}
        unit.slots = max(slots) + 1 if slots else 0
        if unit.key[0] == "counters":
            counter_set = problem.counter_index.get((unit.key[1], unit.key[2], unit.key[3]))
            counted = [n for n in (counter_set.counters if counter_set else {}) if n.startswith("memory-slice-")]
            unit.slots = max(unit.slots, len(counted))
        static = unit.key[0] == "parent"
        if unit.slots or static:
            unit.compute = gpu_compute_total([problem.devices[d].attributes for d in unit.devices], static=static)
    return sorted(units.values(), key=lambda u: (u.node, _natural(u.name)))


def _natural(text: str) -> tuple[object, ...]:
    parts: list[object] = []
    digits = ""
    word = ""
    for ch in text:
        if ch.isdigit():
            if word:
                parts.append(word)
                word = ""
            digits += ch
        else:
            if digits:
                parts.append(int(digits))
                digits = ""
            word += ch
    parts.append(int(digits) if digits else word)
    return tuple((0, p) if isinstance(p, int) else (1, p) for p in parts)


def _all_results(problem: Problem, solution: Solution) -> list[tuple[ClaimKey, DeviceResult]]:
    gone = solution.preempted.keys() | solution.moved.keys()
    out = [(e.claim, r) for e in problem.existing if e.claim not in gone for r in e.results]
    out += [(k, r) for k, p in sorted(solution.placements.items()) for r in p.results]
    return [(k, r) for k, r in out if not r.admin_access]


def unit_usage(problem: Problem, solution: Solution, units: list[Unit]) -> dict[tuple[str, ...], UnitUse]:
    by_device: dict[DeviceIndex, list[tuple[ClaimKey, DeviceResult]]] = defaultdict(list)
    for key, r in _all_results(problem, solution):
        by_device[r.device].append((key, r))
    out: dict[tuple[str, ...], UnitUse] = {}
    for unit in units:
        use = UnitUse(slot_holders=[None] * unit.slots)
        consumed: dict[str, int] = defaultdict(int)
        capacity: dict[str, int] = {}
        for d in unit.devices:
            device = problem.devices[d]
            for key, r in by_device.get(d, []):
                if key not in use.holders:
                    use.holders.append(key)
                for s in _slot_indices(problem, d):
                    if s < unit.slots:
                        use.slot_holders[s] = key
                for name, amount in r.consumed.items():
                    consumed[name] += amount
                    capacity[name] = device.capacity[name].value if name in device.capacity else 0
        if unit.slots:
            use.fraction = sum(1 for h in use.slot_holders if h is not None) / unit.slots
        elif len(unit.devices) > 1 and not unit.shared:
            held = [d for d in unit.devices if by_device.get(d)]
            use.fraction = len(held) / len(unit.devices)
            use.slot_holders = [by_device[d][0][0] if by_device.get(d) else None for d in unit.devices]
        elif unit.shared and capacity:
            name = next((n for n in sorted(capacity) if n.endswith("memory")), sorted(capacity)[0])
            use.fraction = max(consumed[n] / capacity[n] for n in capacity if capacity[n])
            use.share_text = f"{consumed[name] * 100 // max(1, capacity[name])}% {name.rsplit('/', 1)[-1]}"
        elif unit.shared:
            use.fraction = 0.0
        else:
            use.fraction = 1.0 if use.holders else 0.0
        if unit.compute:
            held = [d for d in unit.devices if by_device.get(d)]
            use.compute_used = sum(device_compute(problem.devices[d].attributes, unit.compute) for d in held)
            use.fraction = min(use.fraction, use.compute_used / unit.compute)
        out[unit.key] = use
    return out


def summarize(problem: Problem, solution: Solution) -> Summary:
    units = gpu_units(problem)
    usage = unit_usage(problem, solution, units)
    states = [usage[u.key].state for u in units]
    fragmentation = sum(1 - usage[u.key].fraction for u in units if usage[u.key].state == "partial")
    weights = {c.key: c.priority for c in problem.claims if not c.moving}
    return Summary(
        strategy=solution.strategy,
        status=solution.status,
        proven_optimal=solution.proven_optimal,
        claims=len(weights),
        placed=sum(1 for k in solution.placements if k in weights),
        weight_total=sum(weights.values()),
        weight_placed=sum(weights.get(k, 0) for k in solution.placements),
        gpus=len(units),
        full=states.count("full"),
        partial=states.count("partial"),
        idle=states.count("idle"),
        fragmentation=fragmentation,
        wall_s=solution.wall_s,
    )
