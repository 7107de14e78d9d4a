"""From Kubernetes YAML to placements: selectors, CEL errors, pods, templates, existing allocations,
and the ``status.allocation`` the scheduler would write. Every answer is verified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpupolicy.solver.compile import Compiled, compile_problem
from gpupolicy.solver.inputs import read_inputs
from gpupolicy.solver.output import allocation, document
from gpupolicy.solver.result import Solution, SolveParams
from gpupolicy.solver.solve import solve
from gpupolicy.solver.verify import verify

CASES = Path(__file__).parent / "cases"
PARAMS = SolveParams(time_limit_s=10, workers=1, seed=0)


def run(claims: str, strategy: str = "optimal", inventory_extra: str = "") -> tuple[Compiled, Solution]:
    inventory = [((CASES / "inventory.yaml").read_text(), "inventory.yaml")]
    if inventory_extra:
        inventory.append((inventory_extra, "existing.yaml"))
    inputs = read_inputs(inventory, [(claims, "claims.yaml")])
    compiled = compile_problem(
        inputs.slices, inputs.classes, inputs.pending, allocated=inputs.allocated, nodes=inputs.nodes
    )
    solution = solve(compiled.problem, strategy, PARAMS)
    assert verify(compiled.problem, solution) == []
    return compiled, solution


def claim_yaml(name: str, request: str, namespace: str = "default") -> str:
    body = "\n".join("      " + line for line in request.strip().splitlines())
    return f"""apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata:
  name: {name}
  namespace: {namespace}
spec:
  devices:
{body}
"""


def devices_of(compiled: Compiled, solution: Solution, key: str) -> list[str]:
    placement = solution.placements[key]  # type: ignore[index]
    return [
        f"{compiled.problem.devices[r.device].pool}/{compiled.problem.devices[r.device].name}"
        for r in placement.results
    ]


def test_request_selector_and_taints() -> None:
    claim = claim_yaml(
        "h100",
        """
requests:
- name: gpu
  exactly:
    deviceClassName: gpu
    count: 2
    selectors:
    - cel:
        expression: device.attributes["gpu.example.com"].model == "h100"
""",
    )
    compiled, solution = run(claim)
    [reason] = solution.unplaced["default/h100"]  # type: ignore[index]
    assert reason.code == "selector_excludes_all"
    assert 'request "gpu" selector #0 at claims.yaml:' in reason.message
    assert "device taints (not tolerated) excludes 1" in reason.message
    tolerating = claim.replace(
        "count: 2\n", "count: 2\n          tolerations: [{key: maintenance, operator: Exists}]\n"
    )
    compiled, solution = run(tolerating)
    assert devices_of(compiled, solution, "default/h100") == ["node-a/gpu-0", "node-a/gpu-1"]
    alloc = allocation(compiled, solution.placements["default/h100"])  # type: ignore[index]
    assert alloc["devices"]["results"][1]["tolerations"] == [{"key": "maintenance", "operator": "Exists"}]
    assert alloc["nodeSelector"] == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-a"]}]}]
    }
    assert alloc["devices"]["config"][0]["source"] == "FromClass"


def test_toleration_without_key_tolerates_every_key() -> None:
    """Kubernetes' ToleratesTaint: an empty key matches every taint key, also with operator Equal."""
    request = """
requests:
- name: gpu
  exactly:
    deviceClassName: gpu
    count: 2
    tolerations: [{operator: Equal, value: %s}]
    selectors:
    - cel:
        expression: device.attributes["gpu.example.com"].model == "h100"
"""
    for strategy in ("first-fit", "optimal"):
        compiled, solution = run(claim_yaml("h100", request % '""'), strategy)
        assert devices_of(compiled, solution, "default/h100") == ["node-a/gpu-0", "node-a/gpu-1"], strategy
        _, solution = run(claim_yaml("h100", request % "other"), strategy)
        assert "default/h100" in solution.unplaced, strategy


def test_cel_runtime_error_leaves_the_claim_unschedulable_for_now() -> None:
    """The selector fails on every device: first-fit meets the error on the first device Kubernetes' allocator
    evaluates and reports it as the allocator does; optimal finds no device it may use and names the error."""
    claim = claim_yaml(
        "broken",
        """
requests:
- name: gpu
  exactly:
    deviceClassName: gpu
    selectors:
    - cel:
        expression: device.attributes["gpu.example.com"].nosuchattribute == "x"
""",
    )
    _, solution = run(claim, "first-fit")
    [reason] = solution.unplaced["default/broken"]  # type: ignore[index]
    assert reason.code == "cel_runtime_error"
    assert reason.message.startswith(
        "claim default/broken: selector #0 on device gpu.example.com/node-a/gpu-0: CEL runtime error: "
    ), reason.message
    assert "unschedulable for now" in reason.message
    _, solution = run(claim)
    [reason] = solution.unplaced["default/broken"]  # type: ignore[index]
    assert reason.code == "cel_runtime_error"
    assert "selector #0 fails at run time (selector #0 on device gpu.example.com/node-a/gpu-0: CEL runtime error:" in (
        reason.message
    ), reason.message


def test_first_available_names_the_subrequest_and_shares_capacity() -> None:
    claim = claim_yaml(
        "small",
        """
requests:
- name: gpu
  firstAvailable:
  - name: shared
    deviceClassName: shared
    capacity:
      requests:
        memory: 15Gi
  - name: whole
    deviceClassName: gpu
config:
- requests: [gpu]
  opaque:
    driver: gpu.example.com
    parameters: {note: hello}
""",
    )
    compiled, solution = run(claim + "---\n" + claim.replace("name: small", "name: small-2"))
    for key in ("default/small", "default/small-2"):
        alloc = allocation(compiled, solution.placements[key])  # type: ignore[index]
        [result] = alloc["devices"]["results"]
        assert result["request"] == "gpu/shared"
        assert result["consumedCapacity"] == {"memory": "20Gi"}  # 15Gi rounded up to the 10Gi step
        assert result["shareID"]
        assert alloc["devices"]["config"] == [
            {
                "source": "FromClaim",
                "requests": ["gpu"],
                "opaque": {"driver": "gpu.example.com", "parameters": {"note": "hello"}},
            }
        ]
    doc: dict[str, Any] = document(compiled, solution)
    assert doc["summary"]["placed"] == 2 and doc["unplaced"] == []


def test_pod_claims_are_all_or_nothing_and_templates_expand() -> None:
    pod = """apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: two-a100, namespace: team}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly:
          deviceClassName: gpu
          count: 2
          selectors:
          - cel:
              expression: device.attributes["gpu.example.com"].model == "a100"
---
apiVersion: v1
kind: Pod
metadata: {name: trainer, namespace: team}
spec:
  containers: [{name: main, image: x}]
  resourceClaims:
  - {name: first, resourceClaimTemplateName: two-a100}
  - {name: second, resourceClaimTemplateName: two-a100}
"""
    _, solution = run(pod)
    assert set(solution.unplaced) == {"team/trainer-first", "team/trainer-second"}
    assert all("pod team/trainer" in r.message for r in solution.unplaced["team/trainer-first"])  # type: ignore[index]
    replicas = pod.split("---")[0].replace(
        "metadata: {name: two-a100, namespace: team}",
        "metadata:\n  name: two-a100\n  namespace: team\n  annotations: {gpupolicy.dev/replicas: '2'}",
    )
    replicas = replicas.replace("count: 2", "count: 1")
    _, solution = run(replicas)
    assert sorted(solution.placements) == ["team/two-a100-0", "team/two-a100-1"]


def test_existing_allocations_block_their_devices() -> None:
    existing = """apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: running, namespace: prod}
spec:
  devices:
    requests:
    - name: gpu
      exactly: {deviceClassName: gpu}
status:
  allocation:
    devices:
      results:
      - {request: gpu, driver: gpu.example.com, pool: node-a, device: gpu-0}
"""
    claim = claim_yaml(
        "h100",
        """
requests:
- name: gpu
  exactly:
    deviceClassName: gpu
    selectors:
    - cel:
        expression: device.attributes["gpu.example.com"].model == "h100"
""",
    )
    _, solution = run(claim, inventory_extra=existing)
    [reason] = solution.unplaced["default/h100"]  # type: ignore[index]
    assert reason.code == "capacity_exhausted" and "prod/running" in reason.message


def test_duplicate_claims_are_input_errors() -> None:
    import pytest

    from gpupolicy.policy.errors import DiagnosticError

    claim = claim_yaml("twice", "requests:\n- name: gpu\n  exactly: {deviceClassName: gpu}\n")
    with pytest.raises(DiagnosticError) as exc:
        run(claim + "---\n" + claim)
    assert exc.value.diagnostics[0].code == "duplicate_claim"
    assert str(exc.value.diagnostics[0].location).startswith("claims.yaml:")


def test_match_attribute_wins_over_distinct_attribute() -> None:
    """The API server accepts a constraint with both (validating only matchAttribute); the allocator then
    applies matchAttribute alone, and so must we."""
    claim = claim_yaml(
        "both",
        """
requests:
- name: gpu
  exactly: {deviceClassName: gpu, count: 2}
constraints:
- {matchAttribute: gpu.example.com/model, distinctAttribute: gpu.example.com/index}
""",
    )
    compiled, _ = run(claim)
    [both] = [c for c in compiled.problem.claims if c.name == "both"]
    assert [(c.attribute, c.distinct) for c in both.constraints] == [("gpu.example.com/model", False)]
