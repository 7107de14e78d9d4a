"""Bound pods and PodDisruptionBudgets in input files: who holds the allocated claims, and what a solve that may
preempt or defragment is allowed to give up (``SolveInput.pods/budgets`` and ``Existing.eviction``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.solver.inputs import read_inputs
from gpupolicy.solver.problem import Disruption, Eviction

CASES = Path(__file__).parent / "cases"


def held(name: str, device: str, pod: str, namespace: str = "prod") -> str:
    return f"""apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  devices:
    requests:
    - name: gpu
      exactly: {{deviceClassName: gpu}}
status:
  allocation:
    devices:
      results:
      - {{request: gpu, driver: gpu.example.com, pool: node-a, device: {device}}}
  reservedFor:
  - {{resource: pods, name: {pod}, uid: uid-{pod}}}
---
"""


CLUSTER = (
    held("train-gpu", "gpu-0", "train")
    + held("web-gpu", "gpu-1", "web")
    + """apiVersion: v1
kind: Pod
metadata:
  name: train
  namespace: prod
  uid: uid-train
  labels: {app: train}
  annotations: {gpupolicy.dev/movable: "true"}
  ownerReferences:
  - {apiVersion: batch/v1, kind: Job, name: train, uid: uid-job, controller: true}
spec:
  nodeName: node-a
  containers: [{name: c}]
  resourceClaims: [{name: gpu, resourceClaimName: train-gpu}]
status: {phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, uid: uid-web, deletionTimestamp: "2026-01-01T00:00:00Z"}
spec:
  nodeName: node-a
  containers: [{name: c}]
  resourceClaims: [{name: gpu, resourceClaimTemplateName: one-gpu}]
status: {phase: Running}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: train, namespace: prod}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: train}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: quiet, namespace: prod, generation: 2}
spec: {minAvailable: 1}
status: {observedGeneration: 1, disruptionsAllowed: 3}
"""
)

PENDING = """apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: one-gpu, namespace: prod}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly: {deviceClassName: gpu}
---
apiVersion: v1
kind: Pod
metadata: {name: infer, namespace: prod}
spec:
  containers: [{name: c}]
  resourceClaims: [{name: gpu, resourceClaimTemplateName: one-gpu}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: solo, namespace: prod}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly: {deviceClassName: gpu}
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: prod}
spec:
  containers: [{name: c}]
  resourceClaims: [{name: gpu, resourceClaimTemplateName: solo}]
status: {phase: Succeeded}
"""


def inputs():  # type: ignore[no-untyped-def]
    inventory = [((CASES / "inventory.yaml").read_text(), "inventory.yaml"), (CLUSTER, "cluster.yaml")]
    return read_inputs(inventory, [(PENDING, "pending.yaml")])


def test_bound_pods_hold_claims_and_are_not_pending() -> None:
    got = inputs()
    # infer is pending; web (nodeName) and done (Succeeded) are bound: no claim generated for them, and the
    # template only a bound pod uses (solo) is not expanded into replicas either.
    assert [p.claim.metadata.name for p in got.pending] == ["infer-gpu"]
    pods = {p.key: p for p in got.pods}
    assert sorted(pods) == ["prod/done", "prod/train", "prod/web"]
    train = pods["prod/train"]
    assert (train.uid, train.node, train.phase, train.controlled, train.deleting) == (
        "uid-train",
        "node-a",
        "Running",
        True,
        False,
    )
    assert train.labels == {"app": "train"} and train.annotations == {"gpupolicy.dev/movable": "true"}
    assert pods["prod/web"].deleting and not pods["prod/web"].controlled
    assert (pods["prod/done"].node, pods["prod/done"].phase) == ("", "Succeeded")


def test_budgets_are_read_with_their_status() -> None:
    budgets = {b.key: b for b in inputs().budgets}
    assert budgets["prod/train"].allowed is None  # no status: computed from the spec
    assert budgets["prod/train"].max_unavailable == 1 and budgets["prod/train"].match_labels == {"app": "train"}
    assert budgets["prod/quiet"].allowed == 0  # status older than the spec: the Eviction API refuses
    assert budgets["prod/quiet"].match_labels == {} and budgets["prod/quiet"].selector is False


def test_preempting_marks_the_candidates() -> None:
    problem = inputs().compile(Disruption(preempt=True)).problem
    evictions = {e.claim: e.eviction for e in problem.existing}
    assert evictions == {
        "prod/train-gpu": Eviction(unit="pod:prod/train", pods=("prod/train",), budgets=("prod/train",), movable=True),
        "prod/web-gpu": None,  # its pod is being deleted
    }
    assert problem.budgets == {"prod/train": 1, "prod/quiet": 0}


def test_without_disruption_nothing_may_be_given_up() -> None:
    problem = inputs().compile().problem
    assert all(e.eviction is None for e in problem.existing) and problem.budgets == {}


def test_a_bad_budget_is_a_located_error() -> None:
    bad = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: b}\nspec: {minAvailable: 200%}\n"
    with pytest.raises(DiagnosticError) as exc:
        read_inputs([(bad, "cluster.yaml")], [])
    [problem] = exc.value.diagnostics
    assert (problem.code, str(problem.location).split(": ")[0]) == ("invalid_value", "cluster.yaml:4:22")
