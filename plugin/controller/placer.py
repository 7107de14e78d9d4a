"""One batch through the solver: the same load → compile → solve → explain path ``gpupolicy solve`` takes.

Objects are loaded one by one with the solver's own loader and cached by resourceVersion (:class:`LoadCache`);
``read_text`` is the literal ``read_inputs`` path, kept as the reference a test compares against.

The inventory is what the cluster holds (ResourceSlices, DeviceClasses, Nodes, every allocated claim, fixed, and,
when the snapshot was read for disruption, the bound pods holding claims and the PodDisruptionBudgets);
the pending claims are the unallocated claims of the ready units, each pod's claims one gang. A group of pods
must be placed all or nothing too, but across nodes, which the solver's gangs (one pod, one node) do not say:
a group the solver placed only in part is taken out and the rest solved again, until every group is whole or
absent. Allocations come from ``gpupolicy.solver.output.allocation``, the shape the scheduler writes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpupolicy.plugin.controller.holders import bound_pod_wire, budget_wire
from gpupolicy.plugin.controller.holds import reserve
from gpupolicy.plugin.controller.nodes import allowed_nodes, restrict
from gpupolicy.plugin.controller.snapshot import ClaimRef, Snapshot, State, Unit, allocation, node_wire, slim
from gpupolicy.plugin.kube import Obj
from gpupolicy.policy.k8s.load import Loaded, load_doc
from gpupolicy.policy.policyfile.compile import load_policy
from gpupolicy.policy.policyfile.compiled import CompiledPolicy
from gpupolicy.policy.yamlsrc import SourceDoc
from gpupolicy.solver.compile import ClassInfo, Compiled, PendingClaim
from gpupolicy.solver.compile_devices import NodeInfo
from gpupolicy.solver.holders import budget_info, pod_info
from gpupolicy.solver.inputs import SolveInput, read_inputs
from gpupolicy.solver.output import allocation as allocation_of
from gpupolicy.solver.problem import ClaimKey, Disruption
from gpupolicy.solver.result import Reason, Solution, SolveParams
from gpupolicy.solver.solve import solve

KEEP_META = ("name", "namespace", "uid", "labels", "annotations", "generation", "resourceVersion")


@dataclass(frozen=True)
class Settings:
    policy: tuple[str, str] | None = None  # (text, filename)
    strategy: str = "optimal"
    params: SolveParams = field(default_factory=lambda: SolveParams(workers=1, explain_total_s=10.0))
    disruption: Disruption = field(default_factory=Disruption)  # what a solve may evict (this pass)


@dataclass
class Plan:
    placed: dict[str, dict[ClaimRef, Obj]] = field(default_factory=dict)  # unit -> claim -> status.allocation
    unplaced: dict[str, list[tuple[ClaimRef, Reason]]] = field(default_factory=dict)
    solve_s: float = 0.0
    status: str = ""
    rounds: int = 0
    compiled: Compiled | None = None
    solution: Solution | None = None
    problems: list[str] = field(default_factory=list)  # cluster objects left out as invalid


def _text(objs: Sequence[Obj], name: str) -> tuple[str, str]:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}), name


def read_text(
    snapshot: Snapshot, pending: Sequence[ClaimRef], gangs: dict[ClaimRef, str], settings: Settings
) -> SolveInput:
    """Through ``gpupolicy.solver.inputs.read_inputs``, exactly as ``gpupolicy solve`` reads files
    (the reference path)."""
    inventory = [
        _text([slim(s, KEEP_META) for s in snapshot.slices], "<cluster:resourceslices>"),
        _text([slim(c, KEEP_META) for c in snapshot.classes], "<cluster:deviceclasses>"),
        _text([node_wire(n) for n in snapshot.nodes], "<cluster:nodes>"),
        _text([slim(c, KEEP_META, with_allocation=True) for c in snapshot.allocated()], "<cluster:allocated>"),
        _text([bound_pod_wire(p) for p in snapshot.holders], "<cluster:bound pods>"),
        _text([budget_wire(b) for b in snapshot.budgets], "<cluster:poddisruptionbudgets>"),
    ]
    claims = [_text([slim(snapshot.claims[c], KEEP_META) for c in pending], "<cluster:pending>")]
    inputs = read_inputs(inventory, claims, settings.policy)
    inputs.pending = [
        dataclasses.replace(p, gang=gangs.get((p.claim.metadata.namespace_or_default, p.claim.metadata.name or "")))
        for p in inputs.pending
    ]
    return inputs


class LoadCache:
    """Objects loaded by the solver's own loader (``gpupolicy.policy.k8s.load.load_doc``: schema and API-server
    rules), kept by uid and resourceVersion so that an unchanged object is validated once, not on every pass. The
    same inputs as :func:`read_text` (a test checks it), without re-parsing the whole cluster as YAML each time."""

    def __init__(self) -> None:
        self._now: dict[tuple[str, ...], Loaded[Any] | None] = {}
        self._before: dict[tuple[str, ...], Loaded[Any] | None] = {}
        self.problems: list[str] = []
        self._policy: tuple[tuple[str, str], CompiledPolicy] | None = None

    def start(self) -> None:
        self._before, self._now, self.problems = self._now, {}, []

    def policy(self, source: tuple[str, str]) -> CompiledPolicy:
        if self._policy is None or self._policy[0] != source:
            self._policy = (source, load_policy(*source))
        return self._policy[1]

    def load(self, role: str, obj: Obj) -> Loaded[Any] | None:
        meta = obj.get("metadata") or {}
        name = f"{meta.get('namespace', '')}/{meta.get('name', '')}".lstrip("/")
        version = str(meta.get("resourceVersion", ""))
        key = (role, str(meta.get("uid") or name), version)
        if key in self._now:
            return self._now[key]
        if version and key in self._before:
            loaded = self._before[key]
        else:
            wire = _wire(role, obj)
            doc = SourceDoc(wire, f"<cluster:{obj.get('kind', '')} {name}>")
            loaded, problems = load_doc(doc)
            self.problems += [str(p) for p in problems]
        self._now[key] = loaded
        return loaded


def _wire(role: str, obj: Obj) -> Obj:
    if role == "holder":
        return bound_pod_wire(obj)
    if role == "budget":
        return budget_wire(obj)
    return slim(obj, KEEP_META, with_allocation=role == "allocated")


def read(
    snapshot: Snapshot,
    pending: Sequence[ClaimRef],
    gangs: dict[ClaimRef, str],
    settings: Settings,
    cache: LoadCache | None = None,
) -> SolveInput:
    """The solver's inputs from the cluster: invalid objects are left out (``cache.problems`` says why)."""
    cache = cache or LoadCache()
    cache.start()
    out = SolveInput()
    if settings.policy is not None:
        out.policy = cache.policy(settings.policy)
        for cls in out.policy.device_classes:
            out.classes[cls.name] = ClassInfo(cls)
    out.slices = [loaded.obj for s in snapshot.slices if (loaded := cache.load("slice", s)) is not None]
    for obj in snapshot.classes:
        loaded = cache.load("class", obj)
        if loaded is not None:
            out.classes[loaded.obj.name] = ClassInfo(loaded.obj, loaded.doc.locate)
    out.nodes = [NodeInfo(str(n["metadata"]["name"]), dict(n["metadata"].get("labels") or {})) for n in snapshot.nodes]
    out.allocated = [loaded.obj for c in snapshot.allocated() if (loaded := cache.load("allocated", c)) is not None]
    out.pods = [pod_info(loaded.obj) for p in snapshot.holders if (loaded := cache.load("holder", p)) is not None]
    out.budgets = [budget_info(loaded.obj) for b in snapshot.budgets if (loaded := cache.load("budget", b)) is not None]
    for claim_ref in pending:
        loaded = cache.load("pending", snapshot.claims[claim_ref])
        if loaded is not None:
            out.pending.append(PendingClaim(loaded.obj, loaded.doc.locate, gangs.get(claim_ref)))
    return out


Reserved = Mapping[str, Collection[tuple[str, str, str]]]  # unit -> the devices held for it


def prepare(
    snapshot: Snapshot, todo: Sequence[Unit], settings: Settings, cache: LoadCache, reserved: Reserved | None = None
) -> Compiled:
    """The solver's problem for ``todo``: their pending claims loaded, compiled (with what ``settings.disruption``
    lets the solve evict: the snapshot's holders and PodDisruptionBudgets, see :func:`read`), narrowed to their
    pods' nodes, and without the devices ``reserved`` for other units (holds)."""
    pending, gangs = _pending(snapshot, todo)
    inputs = read(snapshot, pending, gangs, settings, cache)
    compiled = inputs.compile(settings.disruption if settings.disruption.any else None)
    restrict(compiled, _pod_nodes(snapshot, todo))
    mine = {u.key: {ClaimKey(f"{ns}/{name}") for ns, name in u.claims} for u in todo}
    for key, held in (reserved or {}).items():
        reserve(compiled, held, mine.get(key, set()))
    return compiled


def plan(
    snapshot: Snapshot,
    units: Sequence[Unit],
    settings: Settings,
    cache: LoadCache | None = None,
    reserved: Reserved | None = None,
) -> Plan:
    """Solve the ready units together; groups all or nothing."""
    out = Plan()
    cache = cache or LoadCache()
    todo = [u for u in units if u.state == State.READY]
    started = time.perf_counter()
    while todo:
        out.rounds += 1
        compiled = prepare(snapshot, todo, settings, cache, reserved)
        out.problems = list(cache.problems)
        solution = solve(compiled.problem, settings.strategy, settings.params)
        out.compiled, out.solution, out.status = compiled, solution, solution.status
        broken = _split(compiled, solution, todo, snapshot, out)
        if not broken:
            break
        todo = [u for u in todo if u.key not in broken]
    out.solve_s = time.perf_counter() - started
    return out


@dataclass(frozen=True)
class Failure:
    """A unit the controller could not handle: the stage (``compile``, ``solve``, ``write``, ``recover``) and the
    exception."""

    stage: str
    error: Exception


def plan_isolated(
    snapshot: Snapshot,
    units: Sequence[Unit],
    settings: Settings,
    cache: LoadCache | None = None,
    reserved: Reserved | None = None,
) -> tuple[Plan, dict[str, Failure]]:
    """:func:`plan`, with the units whose claims make it raise left out. When the batch raises, the units to blame
    are found by halving it: first by compiling alone (cheap), then, when every part compiles, by solving. The
    others are solved again without them. When the inventory alone raises, every unit fails with it."""
    cache = cache or LoadCache()
    try:
        return plan(snapshot, units, settings, cache, reserved), {}
    except Exception as exc:
        whole = exc
    inventory = _raises(lambda: prepare(snapshot, [], settings, cache, reserved))
    if inventory is not None:
        return Plan(), {u.key: Failure("compile", inventory) for u in units}
    todo = [u for u in units if u.state == State.READY]
    failed = _halve(todo, lambda part: _raises(lambda: prepare(snapshot, part, settings, cache, reserved)), "compile")
    if not failed:
        failed = _halve(
            todo, lambda part: _raises(lambda: plan(snapshot, part, settings, cache, reserved)), "solve", whole
        )
    rest = [u for u in todo if u.key not in failed]
    try:
        return plan(snapshot, rest, settings, cache, reserved), failed
    except Exception as exc:  # the rest fails together, and no single unit is to blame
        return Plan(), failed | {u.key: Failure("solve", exc) for u in rest}


def _raises(attempt: Callable[[], object]) -> Exception | None:
    try:
        attempt()
    except Exception as exc:
        return exc
    return None


def _halve(
    units: Sequence[Unit],
    probe: Callable[[Sequence[Unit]], Exception | None],
    stage: str,
    error: Exception | None = None,
) -> dict[str, Failure]:
    """The units that make ``probe`` raise on their own; ``error``: what it raised for all of ``units``, if known."""
    if not units:
        return {}
    error = error or probe(units)
    if error is None:
        return {}
    if len(units) == 1:
        return {units[0].key: Failure(stage, error)}
    middle = len(units) // 2
    return _halve(units[:middle], probe, stage) | _halve(units[middle:], probe, stage)


def _pod_nodes(snapshot: Snapshot, todo: Sequence[Unit]) -> dict[ClaimKey, frozenset[str]]:
    nodes = {str(n["metadata"]["name"]): n for n in snapshot.nodes}
    out: dict[ClaimKey, frozenset[str]] = {}
    for unit in todo:
        pods = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in unit.pods}
        for (ns, name), pod_key in unit.claims.items():
            allowed = allowed_nodes(pods[pod_key], nodes)
            if allowed is not None:
                out[ClaimKey(f"{ns}/{name}")] = allowed
    return out


def _pending(snapshot: Snapshot, todo: Sequence[Unit]) -> tuple[list[ClaimRef], dict[ClaimRef, str]]:
    pending: list[ClaimRef] = []
    gangs: dict[ClaimRef, str] = {}
    for unit in todo:
        for claim, pod in unit.claims.items():
            if allocation(snapshot.claims[claim]) is None and claim not in gangs:
                pending.append(claim)
                gangs[claim] = pod
    return pending, gangs


def _split(compiled: Compiled, solution: Solution, todo: Sequence[Unit], snapshot: Snapshot, out: Plan) -> set[str]:
    """Fill ``out`` from one solve; return the groups placed only in part (to solve again without them)."""
    out.placed.clear()
    broken: set[str] = set()
    for unit in todo:
        keys = [(c, ClaimKey(f"{c[0]}/{c[1]}")) for c in unit.claims if allocation(snapshot.claims[c]) is None]
        missing = [(c, k) for c, k in keys if k not in solution.placements]
        if not missing:
            out.placed[unit.key] = {c: allocation_of(compiled, solution.placements[k]) for c, k in keys}
            continue
        reasons = [(c, r) for c, k in missing for r in solution.unplaced.get(k, [])] or [
            (c, Reason("not_chosen", "not placed")) for c, _ in missing
        ]
        if len(missing) < len(keys):
            broken.add(unit.key)
            pods = sorted({unit.claims[c] for c, _ in missing})
            why = Reason("group_incomplete", f"pod(s) {', '.join(pods)} of {unit.key} cannot be placed")
            reasons.insert(0, (missing[0][0], why))
        out.unplaced[unit.key] = reasons
    return broken
