"""Small helpers to write solver problems in a few lines (tests only)."""

from __future__ import annotations

from gpupolicy.solver.problem import (
    AllocationMode,
    Alternative,
    Capacity,
    Claim,
    Constraint,
    CounterSet,
    CounterUse,
    Device,
    DeviceIndex,
    NodeName,
    Problem,
    Request,
    RequestPolicy,
    Taint,
)

DRIVER = "gpu.example.com"

# H100 MIG placements: profile -> (memory slices, valid start slots)
MIG = {
    "1g.10gb": (1, range(7)),
    "2g.20gb": (2, (0, 2, 4)),
    "3g.40gb": (4, (0, 4)),
    "4g.40gb": (4, (0,)),
    "7g.80gb": (8, (0,)),
}


def gpu(node: str, name: str, model: str = "h100", index: int = 0, **attrs: object) -> Device:
    attributes: dict[str, bool | int | str] = {
        f"{DRIVER}/model": model,
        f"{DRIVER}/type": "gpu",
        f"{DRIVER}/index": index,
    }
    attributes.update({f"{DRIVER}/{k}": v for k, v in attrs.items()})  # type: ignore[misc]
    return Device(
        DRIVER, node, name, node, node, None, frozenset({NodeName(node)}), attributes, order=(DRIVER, node, node, name)
    )


# A30 MIG placements: 4 memory slots, 4 compute slices
A30_MIG = {
    "1g.6gb": (1, range(4)),
    "2g.12gb": (2, (0, 2)),
    "4g.24gb": (4, (0,)),
}


def mig_gpu(
    node: str, gpu_index: int, profiles: dict[str, tuple[int, range | tuple[int, ...]]] = MIG, slots: int = 8
) -> tuple[list[Device], CounterSet]:
    cset = f"gpu-{gpu_index}-counters"
    devices = []
    for profile, (size, starts) in profiles.items():
        for start in starts:
            used = {f"memory-slice-{i}": 1 for i in range(start, start + size)}
            name = f"gpu-{gpu_index}-mig-{profile}-{start}"
            attrs = {f"{DRIVER}/type": "mig", f"{DRIVER}/profile": profile, f"{DRIVER}/parent": gpu_index}
            devices.append(
                Device(
                    DRIVER,
                    node,
                    name,
                    node,
                    node,
                    None,
                    frozenset({NodeName(node)}),
                    attrs,
                    consumes=(CounterUse(cset, used),),
                    order=(DRIVER, node, node, len(devices) + 100 * gpu_index),
                )
            )
    counters = CounterSet(DRIVER, node, cset, {f"memory-slice-{i}": 1 for i in range(slots)})
    return devices, counters


def shared_gpu(node: str, name: str, memory: int = 80, step: int | None = None) -> Device:
    policy = RequestPolicy(default=1, range_min=1, range_step=step) if step else None
    return Device(
        DRIVER,
        node,
        name,
        node,
        node,
        None,
        frozenset({NodeName(node)}),
        {f"{DRIVER}/type": "shared"},
        capacity={"memory": Capacity(memory, policy)},
        multi_allocatable=True,
        order=(DRIVER, node, node, name),
    )


def eligible(devices: list[Device], **want: object) -> tuple[DeviceIndex, ...]:
    out = []
    for i, d in enumerate(devices):
        if all(d.attributes.get(f"{DRIVER}/{k}") == v for k, v in want.items()):
            out.append(DeviceIndex(i))
    return tuple(out)


def claim(
    name: str,
    alternatives: list[Alternative],
    *,
    ns: str = "default",
    gang: str | None = None,
    constraints: tuple[Constraint, ...] = (),
    priority: int = 1,
    request: str = "gpu",
) -> Claim:
    return Claim(ns, name, (Request(request, tuple(alternatives)),), constraints, priority=priority, gang=gang)


def alt(
    devs: tuple[DeviceIndex, ...],
    count: int = 1,
    name: str = "gpu",
    *,
    all_mode: bool = False,
    capacity: dict[str, int] | None = None,
    admin: bool = False,
) -> Alternative:
    return Alternative(
        name,
        "gpu",
        devs,
        AllocationMode.ALL if all_mode else AllocationMode.EXACT_COUNT,
        count,
        admin_access=admin,
        capacity=capacity or {},
    )


def problem(devices: list[Device], claims: list[Claim], counter_sets: list[CounterSet] = (), **kw: object) -> Problem:  # type: ignore[assignment]
    nodes = sorted({n for d in devices for n in d.nodes or ()})
    return Problem(tuple(devices), tuple(claims), tuple(counter_sets), tuple(nodes), **kw)  # type: ignore[arg-type]


__all__ = ["Taint"]
