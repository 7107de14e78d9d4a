"""Holds: devices kept for a unit whose placement waits for evicted pods to release their claims.

When a plan evicts pods (preemption, defragmentation), the unit that takes what they free is not written at
once: the victims' claims still hold the devices until their pods have terminated and kube-controller-manager
has deallocated them. Meanwhile the unit *holds* the devices of its planned placement. The hold is persisted as
the annotation ``gpupolicy.dev/hold`` on each of the unit's (gated) pods, so that a new leader keeps it:

```json
{"reason": "preempted", "pods": [["ns/victim", "uid"]], "claims": [["ns/claim", "uid"]],
 "devices": [["driver", "pool", "device"]], "since": "2026-…Z", "deadline": "2026-…Z"}
```

While a hold waits, its unit is not solved (no new victims), and no other claim may be placed on a held device
or on any device sharing a counter set with one (a MIG instance of the same GPU would use up the slices the
held one needs): :func:`reserve`. The hold is *released* once no victim claim holds one of its devices any more
(deallocated, deleted, or recreated under the same name: another uid); the unit is then solved again, the held
devices still reserved for it, and written the normal way. A hold past its deadline is dropped and the unit
solved again like any other. Times are wall-clock (RFC 3339, whole seconds): a new leader reads them.
"""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from gpupolicy.plugin.controller.commit import DeviceKey, devices, update_pod
from gpupolicy.plugin.controller.snapshot import HOLD, ClaimRef, Unit, allocation
from gpupolicy.plugin.kube import Api, Obj
from gpupolicy.plugin.timefmt import kube_time
from gpupolicy.solver.compile import Compiled
from gpupolicy.solver.narrow import Rule, narrow
from gpupolicy.solver.problem import ClaimKey, DeviceIndex

Named = tuple[str, str]  # ns/name, uid


@dataclass(frozen=True)
class Hold:
    reason: str  # "preempted" or "moved": why the victims were evicted
    pods: tuple[Named, ...]  # the victim pods
    claims: tuple[Named, ...]  # the victim claims, whose release the unit waits for
    devices: tuple[DeviceKey, ...]  # the unit's planned placement
    since: float  # wall clock: when the evictions started
    deadline: float  # wall clock: when the hold is dropped if the claims are still held

    def to_annotation(self) -> str:
        return json.dumps(
            {
                "reason": self.reason,
                "pods": [list(p) for p in self.pods],
                "claims": [list(c) for c in self.claims],
                "devices": [list(d) for d in self.devices],
                "since": kube_time(self.since),
                "deadline": kube_time(self.deadline),
            },
            sort_keys=True,
        )

    @classmethod
    def from_annotation(cls, text: str) -> Hold:
        """Raises ``ValueError`` (or ``KeyError``/``TypeError``) for a value that does not read."""
        raw: Mapping[str, Any] = json.loads(text)
        return cls(
            str(raw["reason"]),
            tuple((str(n), str(u)) for n, u in raw["pods"]),
            tuple((str(n), str(u)) for n, u in raw["claims"]),
            tuple((str(d), str(p), str(n)) for d, p, n in raw["devices"]),
            _epoch(str(raw["since"])),
            _epoch(str(raw["deadline"])),
        )


def _epoch(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def hold_of(unit: Unit) -> Hold | None:
    """The unit's hold (the first of its pods that carries one); None when none, or when it does not read (a hold
    a person edited into nonsense is dropped, not obeyed)."""
    for pod in unit.pods:
        text = (pod["metadata"].get("annotations") or {}).get(HOLD)
        if text:
            try:
                return Hold.from_annotation(text)
            except (ValueError, KeyError, TypeError):
                return None
    return None


def released(hold: Hold, claims: Mapping[ClaimRef, Obj]) -> bool:
    """No victim claim holds one of the held devices any more."""
    wanted = set(hold.devices)
    for name, uid in hold.claims:
        namespace, _, claim_name = name.partition("/")
        obj = claims.get((namespace, claim_name))
        if obj is None or (uid and str(obj["metadata"].get("uid", "")) != uid):
            continue
        if devices(allocation(obj)) & wanted:
            return False
    return True


def annotate(api: Api, pod: Obj, value: str | None) -> None:
    """Set (or, with None, remove) the hold annotation, retrying on conflicts; a pod gone is left alone."""

    def change(obj: Obj) -> bool:
        annotations = obj["metadata"].get("annotations") or {}
        if annotations.get(HOLD) == value:
            return False
        if value is None:
            obj["metadata"].setdefault("annotations", {}).pop(HOLD, None)
        else:
            obj["metadata"].setdefault("annotations", {})[HOLD] = value
        return True

    update_pod(api, pod, change, "hold annotation")


def reserve(compiled: Compiled, held: Collection[DeviceKey], keep: Collection[ClaimKey] = ()) -> None:
    """Drop the held devices, and every device sharing a counter set with one, from the alternatives of every
    claim but ``keep`` (the holding unit's own)."""
    if not held:
        return
    problem = compiled.problem
    wanted = set(held)
    sets = {(d.driver, d.pool, use.counter_set) for d in problem.devices if d.key in wanted for use in d.consumes}
    blocked = {
        DeviceIndex(i)
        for i, d in enumerate(problem.devices)
        if d.key in wanted or any((d.driver, d.pool, use.counter_set) in sets for use in d.consumes)
    }
    if not blocked:
        return
    rule: Rule = ("held", "devices held for a preempting unit", lambda d: d not in blocked)
    compiled.problem = narrow(problem, lambda claim: None if claim.key in keep else rule)
