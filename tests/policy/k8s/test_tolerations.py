"""Taints vs tolerations, table-driven after Kubernetes' own ToleratesTaint test.

The table (``data/tolerations.yaml``) runs against both implementations: the API model's
``toleration_tolerates`` and the solver's ``Toleration.tolerates`` (built from the same model the way
``solver/compile.py`` builds it), so the two can never drift apart.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gpupolicy.policy.k8s.common import DeviceTaint, DeviceToleration, toleration_tolerates
from gpupolicy.solver.problem import Taint, Toleration, tolerated

from .conftest import read_data

CASES: list[dict[str, Any]] = yaml.safe_load(read_data("tolerations.yaml"))


def _solver_toleration(t: DeviceToleration) -> Toleration:
    return Toleration(t.key or "", t.effective_operator, t.value or "", t.effect or "")


def _solver_taint(t: DeviceTaint) -> Taint:
    return Taint(t.key, t.value or "", t.effect)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_tolerates_taint(case: dict[str, Any]) -> None:
    toleration = DeviceToleration.model_validate(case["toleration"])
    taint = DeviceTaint.model_validate(case["taint"])
    assert toleration_tolerates(toleration, taint) is case["want"]
    assert _solver_toleration(toleration).tolerates(_solver_taint(taint)) is case["want"]


def test_unknown_operator_tolerates_nothing() -> None:
    assert not Toleration(key="k", operator="Bogus").tolerates(Taint("k"))


def test_only_blocking_effects_need_a_toleration() -> None:
    """The allocator ignores taints with effect None (and unknown effects): taintPreventsAllocation."""
    assert tolerated((Taint("k", "v", "None"),), ())
    assert not tolerated((Taint("k", "v", "NoExecute"),), ())
    assert tolerated((Taint("k", "v", "NoExecute"),), (Toleration(operator="Equal", value="v"),))
