"""What a strategy returns: placements per claim, reasons for the rest, and how the search went."""

from __future__ import annotations

from dataclasses import dataclass, field

from gpupolicy.solver.problem import ClaimKey, DeviceResult, NodeName


@dataclass(frozen=True)
class Reason:
    code: str  # stable: selector_excludes_all, capacity_exhausted, counters_exhausted, ...
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Placement:
    claim: ClaimKey
    node: NodeName  # ANYWHERE ("") when every device is usable from every node
    results: tuple[DeviceResult, ...]


@dataclass(frozen=True)
class Preempted:
    """An allocated claim the plan evicts for good, to place the higher-priority claims ``for_``."""

    claim: ClaimKey
    level: int  # its policy priority
    unit: str
    pods: tuple[str, ...]  # namespace/name of the pods to evict
    for_: tuple[ClaimKey, ...]  # the placed claims that take what it frees
    why: str = ""


@dataclass(frozen=True)
class Moved:
    """An allocated claim the plan moves (defragmentation): its pods are evicted and it is placed again, at
    ``placements[claim]`` of the same solution."""

    claim: ClaimKey
    unit: str
    pods: tuple[str, ...]
    before: tuple[DeviceResult, ...]  # the devices it holds now
    for_: tuple[ClaimKey, ...]  # the pending claims that take what it frees
    why: str = ""


@dataclass(frozen=True)
class SolveParams:
    time_limit_s: float = 30.0
    workers: int = 2
    seed: int = 0
    explain: bool = True
    explain_time_limit_s: float = 5.0  # per unplaced pod
    explain_total_s: float = 30.0  # then the rest get a quick, solver-free reason
    aggregate: bool = True  # use the aggregated model when every claim is simple


@dataclass
class Solution:
    strategy: str
    placements: dict[ClaimKey, Placement] = field(default_factory=dict)
    unplaced: dict[ClaimKey, list[Reason]] = field(default_factory=dict)
    # claims whose pod met a selector error where Kubernetes' allocator would evaluate it (first-fit):
    # unschedulable for now, with that error as the reason
    blocked: dict[ClaimKey, Reason] = field(default_factory=dict)
    status: str = "OPTIMAL"  # OPTIMAL | FEASIBLE (time limit) | HEURISTIC
    proven_optimal: bool = False
    wall_s: float = 0.0
    objective: dict[str, int] = field(default_factory=dict)
    preempted: dict[ClaimKey, Preempted] = field(default_factory=dict)  # allocated claims evicted for good
    moved: dict[ClaimKey, Moved] = field(default_factory=dict)  # allocated claims moved (new place in placements)

    def placed_weight(self, priorities: dict[ClaimKey, int]) -> int:
        return sum(priorities.get(k, 1) for k in self.placements)
