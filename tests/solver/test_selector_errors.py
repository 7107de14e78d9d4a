"""CEL run-time errors on some devices only (issue 16, class 5): they matter where Kubernetes' allocator evaluates
the selector, and then the pod is unschedulable for now, not invalid (docs/solver.md, "CEL run-time errors").

The inventory: node-a has gpu-0 (fast), gpu-1 (no ``fast`` attribute: ``fast == true`` fails there with "no such
key") and gpu-2 (not fast); node-b has two fast GPUs. ``tests/e2e/test_alloc_differential.py`` checks the same
rules against the real allocator."""

from __future__ import annotations

from gpupolicy.solver.compile import Compiled
from gpupolicy.solver.inputs import read_inputs
from gpupolicy.solver.result import Solution, SolveParams
from gpupolicy.solver.solve import solve
from gpupolicy.solver.verify import verify

PARAMS = SolveParams(time_limit_s=10, workers=1, seed=0)
FAST = 'device.attributes["gpu.example.com"].fast == true'


def _slice(node: str, devices: list[tuple[str, str]]) -> str:
    body = "".join(
        f"  - name: {name}\n    attributes:\n      model: {{string: h100}}\n{attrs}" for name, attrs in devices
    )
    return f"""apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {{name: {node}}}
spec:
  driver: gpu.example.com
  nodeName: {node}
  pool: {{name: {node}, generation: 1, resourceSliceCount: 1}}
  devices:
{body}---
"""


FAST_ATTR = "      fast: {bool: true}\n"
INVENTORY = (
    _slice("node-a", [("gpu-0", FAST_ATTR), ("gpu-1", ""), ("gpu-2", "      fast: {bool: false}\n")])
    + _slice("node-b", [("gpu-0", FAST_ATTR), ("gpu-1", FAST_ATTR)])
    + """apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: gpu}
spec:
  selectors:
  - cel: {expression: 'device.driver == "gpu.example.com"'}
"""
)


def claim(name: str, request: str) -> str:
    body = "\n".join("    " + line for line in request.strip().splitlines())
    return f"""---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {{name: {name}, namespace: default}}
spec:
  devices:
{body}
"""


def exactly(extra: str = "count: 1") -> str:
    return f"""requests:
- name: gpu
  exactly:
    deviceClassName: gpu
    {extra}
    selectors:
    - cel: {{expression: '{FAST}'}}
"""


def run(claims: str, strategy: str, existing: str = "") -> tuple[Compiled, Solution]:
    inventory = [(INVENTORY, "inventory.yaml")] + ([(existing, "existing.yaml")] if existing else [])
    compiled = read_inputs(inventory, [(claims, "claims.yaml")]).compile()
    solution = solve(compiled.problem, strategy, PARAMS)
    assert verify(compiled.problem, solution) == []
    return compiled, solution


def where(compiled: Compiled, solution: Solution, key: str) -> list[str]:
    devices = compiled.problem.devices
    return [f"{devices[r.device].pool}/{devices[r.device].name}" for r in solution.placements[key].results]  # type: ignore[index]


def test_an_error_after_the_first_solution_does_not_matter() -> None:
    compiled, solution = run(claim("one", exactly()), "first-fit")
    assert where(compiled, solution, "default/one") == ["node-a/gpu-0"]


def test_an_error_the_search_meets_makes_the_pod_unschedulable_for_now() -> None:
    claims = claim("one", exactly()) + claim("two", exactly()) + claim("three", exactly())
    compiled, solution = run(claims, "first-fit")
    assert where(compiled, solution, "default/one") == ["node-a/gpu-0"]
    for key in ("default/two", "default/three"):  # gpu-0 is taken: the search reaches gpu-1 on node-a
        [reason] = solution.unplaced[key]  # type: ignore[index]
        assert reason.code == "cel_runtime_error"
        assert reason.message.startswith(
            f"claim {key}: selector #0 on device gpu.example.com/node-a/gpu-1: CEL runtime error: no such key: fast"
        ), reason.message
        assert "met on node node-a; unschedulable for now" in reason.message
    # optimal never evaluates gpu-1: it chooses its devices, and the allocator confirms them
    compiled, solution = run(claims, "optimal")
    assert sorted(d for key in ("one", "two", "three") for d in where(compiled, solution, f"default/{key}")) == [
        "node-a/gpu-0",
        "node-b/gpu-0",
        "node-b/gpu-1",
    ]


def test_an_error_on_a_device_in_use_is_never_met() -> None:
    existing = """apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: holder, namespace: default}
spec:
  devices:
    requests:
    - {name: gpu, exactly: {deviceClassName: gpu}}
status:
  allocation:
    devices:
      results:
      - {request: gpu, driver: gpu.example.com, pool: node-a, device: gpu-1}
    nodeSelector:
      nodeSelectorTerms:
      - matchFields:
        - {key: metadata.name, operator: In, values: [node-a]}
"""
    compiled, solution = run(claim("one", exactly()) + claim("two", exactly()), "first-fit", existing)
    assert where(compiled, solution, "default/one") == ["node-a/gpu-0"]
    assert where(compiled, solution, "default/two") == ["node-b/gpu-0"]


def test_all_mode_evaluates_every_device_of_the_node() -> None:
    claims = claim("all", exactly("allocationMode: All"))
    _, solution = run(claims, "first-fit")
    [reason] = solution.unplaced["default/all"]  # type: ignore[index]
    assert reason.code == "cel_runtime_error" and "node-a/gpu-1" in reason.message
    compiled, solution = run(claims, "optimal")  # node-a is out of reach; node-b has every fast device of its own
    assert where(compiled, solution, "default/all") == ["node-b/gpu-0", "node-b/gpu-1"]


def test_a_later_subrequest_is_not_used_where_an_earlier_one_fails() -> None:
    claims = claim(
        "first",
        f"""requests:
- name: gpu
  firstAvailable:
  - name: three-fast
    deviceClassName: gpu
    count: 3
    selectors:
    - cel: {{expression: '{FAST}'}}
  - name: any
    deviceClassName: gpu
""",
    )
    _, solution = run(claims, "first-fit")  # three-fast must fail on node-a first, and meets gpu-1 doing so
    [reason] = solution.unplaced["default/first"]  # type: ignore[index]
    assert reason.code == "cel_runtime_error" and "node-a/gpu-1" in reason.message
    compiled, solution = run(claims, "optimal")
    assert where(compiled, solution, "default/first") in (["node-b/gpu-0"], ["node-b/gpu-1"])


def test_a_shared_device_a_request_of_the_pod_fails_on_is_not_used() -> None:
    """Any request of the pod may evaluate a multi-allocatable device (it is never in use), so optimal does not
    give the pod one that a selector of the pod fails on (node-c would fit it otherwise: shared-0 for "share",
    gpu-9 for "fast"); first-fit meets the error there, as the allocator does."""
    shared = """apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {name: node-c}
spec:
  driver: gpu.example.com
  nodeName: node-c
  pool: {name: node-c, generation: 1, resourceSliceCount: 1}
  devices:
  - name: shared-0
    allowMultipleAllocations: true
    attributes:
      model: {string: h100}
  - name: gpu-9
    attributes:
      fast: {bool: true}
"""
    claims = claim(
        "pair",
        f"""requests:
- name: share
  exactly:
    deviceClassName: gpu
    selectors:
    - cel: {{expression: device.allowMultipleAllocations}}
- name: fast
  exactly:
    deviceClassName: gpu
    selectors:
    - cel: {{expression: '{FAST}'}}
""",
    )
    _, solution = run(claims, "first-fit", shared)
    [reason] = solution.unplaced["default/pair"]  # type: ignore[index]
    assert reason.code == "cel_runtime_error" and "node-c/shared-0" in reason.message, reason.message
    _, solution = run(claims, "optimal", shared)
    [reason] = solution.unplaced["default/pair"]  # type: ignore[index]
    assert "a selector of the pod fails at run time on this multi-allocatable device excludes 1" in reason.message
