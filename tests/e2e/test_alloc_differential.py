"""Allocation differential (issue 16, item 3): gpupolicy's ``first-fit`` and ``optimal`` against Kubernetes' own
structured allocator (the test bed's ``allocoracle``, driven as the scheduler drives it).

A seeded generator builds scenarios from gpupolicy's own slice builder (one to three H100 nodes, each GPU whole,
dynamic MIG with shared counters, or time-sliced / MPS shares with consumable capacity; some devices tainted),
DeviceClasses, existing allocations, and pods of one or two claims (several requests, ``firstAvailable``
subrequests, ``allocationMode: All``, ``matchAttribute`` constraints, capacity requests, tolerations, and selectors
that fail at run time on some devices only). For every scenario:

- ``first-fit`` must decide each pod as the allocator does, pod by pod: the same node and device for device
  the same results (request, device, consumed capacity, a shareID or not), or unschedulable, or the same error
  on the same node (the same selector failing on the same device, or the same device refused by a constraint
  of an ``All`` request): then "unschedulable for now", code ``cel_runtime_error`` / ``constraint_unsatisfiable``;
- every pod ``optimal`` places must be an allocation the allocator chooses when pinned to it
  (:func:`tests.e2e.allocoracle.pinned`), or, where only the split of multi-allocatable devices between requests
  differs ("equivalent"), one gpupolicy's own verifier accepts.

The generator must keep producing every outcome (allocated, unschedulable, error, optimal placements), or the
comparison would prove little; the counts are printed.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gpupolicy.policy.builder import NodeRef, build_slices
from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.gpu import EXCLUSIVE, GpuInfo, Mode, Publish
from gpupolicy.policy.k8s.dump import to_wire
from gpupolicy.policy.k8s.load import load_doc
from gpupolicy.policy.k8s.slice import ResourceSlice
from gpupolicy.policy.yamlsrc import SourceDoc
from gpupolicy.solver.compile import Compiled
from gpupolicy.solver.inputs import read_inputs
from gpupolicy.solver.output import allocation, claim_objects
from gpupolicy.solver.problem import ClaimKey
from gpupolicy.solver.result import Solution, SolveParams
from gpupolicy.solver.solve import solve
from gpupolicy.solver.verify import verify
from tests.e2e import allocoracle
from tests.e2e.allocoracle import Pod, PodOutcome, Result, result_key
from tests.e2e.test_slices_accepted import h100_node_gpus

pytestmark = pytest.mark.testbed

Obj = dict[str, Any]
D = "gpu.gpupolicy.dev"
A = f'device.attributes["{D}"]'
GIB = 1024**3
SCENARIOS = 200
OPTIMAL_TIME_S = 0.5  # per stage: time-limited answers must be valid too
NAMESPACE = "default"
TAINT_KEY = "example.com/maint"

CLASSES: dict[str, str] = {
    "gpu": f'device.driver == "{D}" && {A}.type == "gpu" && !device.allowMultipleAllocations',
    "mig": f'device.driver == "{D}" && {A}.type == "mig"',
    "shared": f'device.driver == "{D}" && device.allowMultipleAllocations',
    "any": f'device.driver == "{D}"',
    # fails on every device that is not a MIG device (no profile attribute)
    "small-mig": f'device.driver == "{D}" && {A}.profile.startsWith("1g")',
}

# (selector, the classes it is written for); the ones marked "errors" fail at run time on some devices
SELECTORS: list[tuple[str, tuple[str, ...]]] = [
    (f'{A}.profile == "1g.10gb"', ("mig",)),
    (f'{A}.profile in ["2g.20gb", "3g.40gb"]', ("mig",)),
    (f'{A}.profile == "7g.80gb"', ("mig",)),
    (f'device.capacity["{D}"].memory.compareTo(quantity("40Gi")) >= 0', ("gpu", "mig", "any")),
    (f'{A}.sharing == "exclusive"', ("gpu", "any")),
    (f'{A}.productName.contains("H100")', ("gpu", "mig", "shared", "any")),
]
ERRORING: list[tuple[str, tuple[str, ...]]] = [
    (f'{A}.profile == "1g.10gb"', ("any",)),  # errors on whole GPUs and shares
    (f'{A}.type == "mig" || {A}.nokey == 1', ("any", "gpu")),  # errors on every device but MIG ones
    (f"{A}.nokey == 1", ("shared",)),
]


def publish_choice(rng: random.Random) -> Publish:
    return rng.choice(
        [
            EXCLUSIVE,
            Publish(Mode.MIG, "mig", mig_dynamic=True),
            Publish(Mode.MIG, "mig", mig_dynamic=True),
            Publish(Mode.TIME_SLICING, "ts", shares=4, memory_default_bytes=20 * GIB),
            Publish(Mode.MPS, "mps", shares=8, memory_default_bytes=10 * GIB),
        ]
    )


def node_slices(rng: random.Random, node: str) -> list[Obj]:
    gpus = h100_node_gpus(node)[: rng.randint(1, 3)]
    modes = {g.minor: publish_choice(rng) for g in gpus}
    gpus = [dataclasses.replace(g, mig_enabled=modes[g.minor].mode == Mode.MIG) for g in gpus]
    publish: Callable[[GpuInfo, DeviceView], Publish] = lambda g, _v: modes[g.minor]  # noqa: E731
    slices = [to_wire(s) for s in build_slices(NodeRef(node), gpus, publish_for=publish, driver=D)]
    for s in slices:
        for device in s["spec"].get("devices") or []:
            if rng.random() < 0.08:
                effect = rng.choice(["NoSchedule", "NoExecute"])
                device["taints"] = [{"key": TAINT_KEY, "value": rng.choice(["a", "b"]), "effect": effect}]
    return slices


def device_class(name: str) -> Obj:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": name},
        "spec": {"selectors": [{"cel": {"expression": CLASSES[name]}}]},
    }


def toleration(rng: random.Random) -> list[Obj]:
    roll = rng.random()
    if roll < 0.6:
        return []
    if roll < 0.8:
        return [{"key": TAINT_KEY, "operator": "Exists"}]
    if roll < 0.9:
        return [{"key": TAINT_KEY, "operator": "Equal", "value": "a", "effect": "NoSchedule"}]
    if roll < 0.95:
        return [{"operator": "Equal", "value": "a"}]  # no key: matches every key (issue 16, class 5)
    return [{"operator": "Exists"}]


def exact(rng: random.Random, errors: bool) -> Obj:
    cls = rng.choice(["gpu", "mig", "mig", "shared", "any", "small-mig" if errors else "mig"])
    out: Obj = {"deviceClassName": cls}
    pool = ERRORING if errors and rng.random() < 0.5 else SELECTORS
    fitting = [s for s, classes in pool if cls in classes]
    if fitting and rng.random() < 0.6:
        out["selectors"] = [{"cel": {"expression": rng.choice(fitting)}}]
    if cls == "mig" and rng.random() < 0.1:
        out["allocationMode"] = "All"
        out["selectors"] = [{"cel": {"expression": f'{A}.profile == "7g.80gb"'}}]
    else:
        out["count"] = rng.choice([1, 1, 1, 2, 3])
    if cls == "shared" and rng.random() < 0.7:
        out["capacity"] = {"requests": {"memory": rng.choice(["5Gi", "10Gi", "20Gi", "30Gi"])}}
    tolerations = toleration(rng)
    if tolerations:
        out["tolerations"] = tolerations
    return out


def claim(rng: random.Random, name: str, errors: bool) -> Obj:
    requests: list[Obj] = []
    for i in range(rng.choice([1, 1, 1, 2, 2, 3])):
        if rng.random() < 0.25:
            subs = [{"name": f"s{j}", **exact(rng, errors)} for j in range(rng.randint(2, 3))]
            requests.append({"name": f"r{i}", "firstAvailable": subs})
        else:
            requests.append({"name": f"r{i}", "exactly": exact(rng, errors)})
    devices: Obj = {"requests": requests}
    if len(requests) > 1 and rng.random() < 0.3:
        attribute = rng.choice([f"{D}/parentUUID", "resource.kubernetes.io/pcieRoot", f"{D}/productName"])
        devices["constraints"] = [{"matchAttribute": attribute}]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"devices": devices},
    }


def pod_object(name: str, claims: list[Obj]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "resourceClaims": [{"name": n, "resourceClaimName": n} for n in (c["metadata"]["name"] for c in claims)],
            "containers": [{"name": "c", "image": "registry.invalid/none:0"}],
        },
    }


def documents(objs: list[Obj]) -> str:
    """A YAML stream of JSON documents (much faster to write than block YAML)."""
    return "".join(f"---\n{json.dumps(o)}\n" for o in objs)


@dataclasses.dataclass
class Generated:
    seed: int
    nodes: list[str]
    classes: list[Obj]
    slices: list[Obj]
    allocated: list[Obj]
    pods: list[tuple[str, list[Obj]]]

    def compile(self, pods: list[tuple[str, list[Obj]]] | None = None, allocated: list[Obj] | None = None) -> Compiled:
        inventory = [*self.classes, *(self.allocated if allocated is None else allocated)]
        chosen = self.pods if pods is None else pods
        claims = [c for _, cs in chosen for c in cs] + [pod_object(name, cs) for name, cs in chosen]
        inputs = read_inputs([(documents(inventory), "inventory.yaml")], [(documents(claims), "claims.yaml")])
        inputs.slices += self.slice_objects()  # loaded as read_inputs loads them, without the (slow) YAML text
        return inputs.compile()

    def slice_objects(self) -> list[ResourceSlice]:
        out = []
        for i, wire in enumerate(self.slices):
            loaded, problems = load_doc(SourceDoc(wire, "slices.yaml", i))
            assert loaded is not None and not problems, problems
            out.append(loaded.obj)
        return out


def generate(seed: int) -> Generated:
    rng = random.Random(seed)
    nodes = [f"node-{c}" for c in "abc"[: rng.randint(1, 3)]]
    slices = [s for n in nodes for s in node_slices(rng, n)]
    errors = rng.random() < 0.3
    classes = [device_class(name) for name in CLASSES]

    def pods(prefix: str, count: int) -> list[tuple[str, list[Obj]]]:
        out = []
        for p in range(count):
            name = f"{prefix}{p}"
            out.append((name, [claim(rng, f"{name}-c{c}", errors) for c in range(rng.choice([1, 1, 2]))]))
        return out

    scenario = Generated(seed, sorted(nodes), classes, slices, [], [])
    before = pods("old", rng.randint(0, 2))
    if before:  # existing allocations: what first-fit made of a few earlier pods
        compiled = scenario.compile(before)
        scenario.allocated = [c for c in claim_objects(compiled, solve(compiled.problem, "first-fit")) if "status" in c]
    scenario.pods = pods("pod", rng.randint(2, 6))
    return scenario


Decision = tuple[str, str, dict[str, tuple[Result, ...]]]  # (outcome, node (and failure), claim -> results)
ERROR_AT = re.compile(r"(?:class [^:]+: )?selector #\d+ on device [^:]+|cannot add device \S+")


def ours(compiled: Compiled, solution: Solution, pods: list[tuple[str, list[Obj]]]) -> dict[str, Decision]:
    out: dict[str, Decision] = {}
    for name, claims in pods:
        keys = [ClaimKey(f"{NAMESPACE}/{c['metadata']['name']}") for c in claims]
        placements = [solution.placements.get(k) for k in keys]
        if all(p is not None for p in placements):
            results = {
                k.split("/", 1)[1]: tuple(result_key(r) for r in allocation(compiled, p)["devices"]["results"])  # type: ignore[arg-type]
                for k, p in zip(keys, placements)
            }
            out[name] = ("allocated", str(placements[0].node), results)  # type: ignore[union-attr]
            continue
        blocked = [solution.blocked[k] for k in keys if k in solution.blocked]
        if not blocked:
            out[name] = ("unschedulable", "", {})
            continue
        assert blocked[0].code in ("cel_runtime_error", "constraint_unsatisfiable"), blocked
        met_on = re.search(r"met on node (\S+);", blocked[0].message)
        out[name] = ("error", f"{met_on.group(1) if met_on else '?'}: {failure(blocked[0].message)}", {})
    return out


def failure(message: str) -> str:
    """Which selector failed on which device (or which device a constraint refused), as both word it."""
    found = ERROR_AT.search(message)
    return found.group(0) if found else message


def theirs(outcome: PodOutcome) -> Decision:
    if outcome.outcome == "error":
        return ("error", f"{outcome.node}: {failure(outcome.error)}", {})
    node = outcome.node if outcome.outcome == "allocated" else ""
    return (outcome.outcome, node, dict(outcome.claims))


@dataclasses.dataclass
class Checked:
    """One scenario, solved by gpupolicy; the oracle's questions and what gpupolicy answers."""

    generated: Generated
    first_fit: dict[str, Decision]
    optimal: list[Pod]  # the pods optimal placed, each with its allocation and node
    violations: list[str]  # gpupolicy's own verifier on optimal's answer

    def oracle(self, pods: list[Pod]) -> allocoracle.Scenario:
        g = self.generated
        return allocoracle.Scenario(g.classes, g.slices, g.allocated, g.nodes, pods)


def check(scenario: Generated) -> Checked:
    compiled = scenario.compile()
    solution = solve(compiled.problem, "first-fit", SolveParams(explain=True, explain_total_s=0.0))
    params = SolveParams(time_limit_s=OPTIMAL_TIME_S, workers=1, seed=scenario.seed, explain=False)
    best = solve(compiled.problem, "optimal", params)
    wires = {c["metadata"]["name"]: c for c in claim_objects(compiled, best)}
    placed = []
    for name, claims in scenario.pods:
        proposal = [wires[c["metadata"]["name"]] for c in claims]
        if all("status" in c for c in proposal):
            node = best.placements[ClaimKey(f"{NAMESPACE}/{claims[0]['metadata']['name']}")].node
            placed.append(Pod(name, proposal, str(node)))
    return Checked(scenario, ours(compiled, solution, scenario.pods), placed, verify(compiled.problem, best))


def first_fit_differences(checked: Checked, real: list[PodOutcome]) -> list[str]:
    for outcome in real:
        if outcome.outcome == "timeout":
            return []  # the allocator's search ran past the oracle's budget: the rest is not compared
        want, got = theirs(outcome), checked.first_fit[outcome.name]
        if want != got:
            seed = checked.generated.seed
            return [f"seed {seed} pod {outcome.name}: kubernetes {want} {outcome.error}; first-fit {got}"]
    return []  # after the first difference later pods see a different state: not compared


def optimal_differences(checked: Checked, real: list[PodOutcome]) -> list[str]:
    """Accepted, or "equivalent" (the allocator fits the pod within the proposed devices, only never splits them
    between requests as proposed) with gpupolicy's verifier accepting the split."""
    seed = checked.generated.seed
    out = [f"seed {seed}: optimal's answer fails gpupolicy's verifier: {v}" for v in checked.violations]
    for o in real:
        if o.outcome in ("accepted", "timeout") or (o.outcome == "equivalent" and not checked.violations):
            continue
        out.append(f"seed {seed} pod {o.name} on {o.node}: optimal's allocation {o.outcome}: {o.error}")
    return out


def run_differential(bin_dir: Path, seeds: range) -> tuple[list[str], dict[str, int]]:
    checked = [check(generate(seed)) for seed in seeds]
    scheduled = allocoracle.schedule(bin_dir, [c.oracle([Pod(n, cs) for n, cs in c.generated.pods]) for c in checked])
    confirmed = allocoracle.pinned(bin_dir, [c.oracle(c.optimal) for c in checked])
    differences: list[str] = []
    kinds = {"allocated": 0, "unschedulable": 0, "error": 0, "timeout": 0, "optimal placed": 0, "equivalent": 0}
    for c, real, pinned in zip(checked, scheduled, confirmed):
        differences += first_fit_differences(c, real)
        differences += optimal_differences(c, pinned)
        for outcome in real:
            kinds[outcome.outcome] += 1
        kinds["optimal placed"] += len(c.optimal)
        kinds["equivalent"] += sum(1 for o in pinned if o.outcome == "equivalent")
        kinds["timeout"] += sum(1 for o in pinned if o.outcome == "timeout")
    return differences, kinds


def test_first_fit_and_optimal_agree_with_the_structured_allocator(testbed_bin: Path) -> None:
    differences, kinds = run_differential(testbed_bin, range(SCENARIOS))
    print(f"\nallocation differential: {SCENARIOS} scenarios, pods by the allocator: {kinds}")
    # the generator must keep producing every kind of outcome, or the comparison proves little
    assert all(kinds[k] >= 20 for k in ("allocated", "unschedulable", "error", "optimal placed")), kinds
    assert not differences, "\n".join(differences[:20])
