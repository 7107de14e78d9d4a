"""The test bed's allocation oracle (``tests/e2e/testbed/allocoracle``, built by ``scripts/build-testbed``):
Kubernetes' structured allocator, driven as the kube-scheduler's DynamicResources plugin drives it, for differential
tests of gpupolicy's ``first-fit`` and ``optimal`` strategies (issue 16, item 3).

:func:`schedule` places pods one at a time, nodes in the given order, the first node with a result winning and
being committed before the next pod; :func:`pinned` asks whether the allocator, with the proposed devices put first
in their pools, chooses exactly a proposed allocation. Objects are wire dicts (resource.k8s.io/v1).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORACLE = "allocoracle"
TIMEOUT_S = 300.0

Obj = Mapping[str, Any]
# One device result as compared: (request, driver, pool, device, consumed capacity (sorted), has a shareID)
Result = tuple[str, str, str, str, tuple[tuple[str, str], ...], bool]


class OracleError(RuntimeError):
    """The oracle could not run or its answer could not be read."""


@dataclass(frozen=True)
class Pod:
    name: str
    claims: Sequence[Obj]
    node: str = ""  # pinned mode: the proposed node


@dataclass(frozen=True)
class PodOutcome:
    name: str
    # schedule: allocated | unschedulable | error; pinned: accepted | rejected
    outcome: str
    node: str
    error: str
    attempts: tuple[tuple[str, str], ...]  # (node, allocated | none | failed-on-node | error)
    claims: Mapping[str, tuple[Result, ...]]  # claim name -> the allocator's results


def result_key(raw: Obj) -> Result:
    consumed = tuple(sorted((str(k), str(v)) for k, v in (raw.get("consumedCapacity") or {}).items()))
    return (raw["request"], raw["driver"], raw["pool"], raw["device"], consumed, bool(raw.get("shareID")))


def _outcome(raw: Obj) -> PodOutcome:
    claims = {
        c["name"]: tuple(result_key(r) for r in (c.get("allocation") or {}).get("results") or [])
        for c in raw.get("claims") or []
    }
    return PodOutcome(
        name=raw["name"],
        outcome=raw["outcome"],
        node=raw.get("node", ""),
        error=raw.get("error", ""),
        attempts=tuple((a["node"], a["outcome"]) for a in raw.get("attempts") or []),
        claims=claims,
    )


@dataclass(frozen=True)
class Scenario:
    """One oracle input: the inventory, the existing allocations, the nodes in the scheduler's order, the pods."""

    classes: Sequence[Obj]
    slices: Sequence[Obj]
    allocated: Sequence[Obj]
    nodes: Sequence[str]
    pods: Sequence[Pod]

    def document(self, mode: str) -> dict[str, Any]:
        return {
            "mode": mode,
            "classes": list(self.classes),
            "slices": list(self.slices),
            "allocated": list(self.allocated),
            "nodes": list(self.nodes),
            "pods": [{"name": p.name, "node": p.node, "claims": list(p.claims)} for p in self.pods],
        }


def _run(bin_dir: Path, mode: str, scenarios: Sequence[Scenario]) -> list[list[PodOutcome]]:
    document = {"scenarios": [s.document(mode) for s in scenarios]}
    try:
        proc = subprocess.run(
            [str(bin_dir / ORACLE)],
            input=json.dumps(document),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OracleError(f"{ORACLE} did not run: {exc}") from exc
    if proc.returncode != 0:
        raise OracleError(f"{ORACLE} exited {proc.returncode}: {proc.stderr.strip()}")
    try:
        out = [[_outcome(raw) for raw in s["pods"]] for s in json.loads(proc.stdout)["scenarios"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise OracleError(f"{ORACLE} answered something unreadable: {exc}") from exc
    asked = [[p.name for p in s.pods] for s in scenarios]
    if [[o.name for o in outcomes] for outcomes in out] != asked:
        raise OracleError(f"{ORACLE} answered for other pods than asked")
    return out


def schedule(bin_dir: Path, scenarios: Sequence[Scenario]) -> list[list[PodOutcome]]:
    """Per scenario, the scheduler's loop: each pod in order on the first node (in ``nodes`` order) where its
    claims fit, committed before the next pod."""
    return _run(bin_dir, "schedule", scenarios)


def pinned(bin_dir: Path, scenarios: Sequence[Scenario]) -> list[list[PodOutcome]]:
    """Per scenario and pod (each claim with a proposed ``status.allocation``, ``node`` set): does the allocator
    choose exactly that? Each proposal is committed before the next pod is judged."""
    return _run(bin_dir, "pinned", scenarios)
