"""Replaying DRA claims (our own formats) with the solver's strategies: every shipped example."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupolicy.solver.compile import compile_problem
from gpupolicy.solver.inputs import read_inputs
from gpupolicy.solver.problem import Problem
from gpupolicy.solver.simulate.claims import STRATEGIES, arrivals, replay_claims

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir())
HERE = Path(__file__).resolve().parent


def _text(path: Path) -> tuple[str, str]:
    return path.read_text(encoding="utf-8"), str(path)


def load(example: Path, claims: Path | None = None) -> Problem:
    inputs = read_inputs(
        [_text(example / "cluster.yaml")], [_text(claims or example / "claims.yaml")], _text(example / "policy.yaml")
    )
    return inputs.compile().problem


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_replays_and_verifies(example: Path, strategy: str) -> None:
    problem = load(example)
    result = replay_claims(problem, strategy, trace=example.name)
    assert result.violations == []
    assert len(result.curve) == len(arrivals(problem)) + 1
    assert all(b >= a - 1e-9 for a, b in zip(result.curve, result.curve[1:])), "nothing departs"
    placed_gangs = len(arrivals(problem)) - len(result.failed)
    assert placed_gangs >= 1
    assert result.gpus.total == len({d.gpu_key for d in problem.devices})
    assert result.gpus.full + result.gpus.partial >= 1


def test_first_fit_strands_the_4g_claim_online_and_batch_do_not() -> None:
    problem = load(ROOT / "examples" / "first-fit-strands")
    first = replay_claims(problem, "first-fit")
    assert first.failed == ["default/b-four-g"]
    assert first.gpus.partial == 1 and first.gpus.full == 0
    for strategy in ("online", "batch"):
        result = replay_claims(problem, strategy)
        assert result.failed == []
        assert sorted(result.placements) == ["default/a-three-g", "default/b-four-g"]
        assert result.gpus.full == 1 and result.curve[-1] == pytest.approx(100.0)
        assert first.curve[-1] < result.curve[-1]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_pod_is_placed_all_or_nothing(strategy: str) -> None:
    problem = load(ROOT / "examples" / "first-fit-strands", HERE / "claims" / "gang.yaml")
    result = replay_claims(problem, strategy)
    assert result.failed == ["default/two-slices"]
    assert result.reasons == {"default/two-slices": "not_placed"}
    assert list(result.placements) == ["default/three-g"]
    assert result.violations == []


def test_batch_window_of_one_is_online() -> None:
    problem = load(ROOT / "examples" / "mixed-fleet-quotas")
    one = replay_claims(problem, "batch", window=1)
    online = replay_claims(problem, "online")
    assert one.curve == online.curve
    assert len(one.decision_ms) == len(arrivals(problem))


def test_shares_count_as_a_fraction_of_a_gpu() -> None:
    # timesliced-notebooks: 15 GPUs; each notebook takes 1 of a T4's 4 shares, the finetune claim a whole A10.
    result = replay_claims(load(ROOT / "examples" / "timesliced-notebooks"), "first-fit")
    assert result.curve == pytest.approx([0.0, 100 * 0.25 / 15, 100 * 0.5 / 15, 100 * 1.5 / 15])
    assert (result.gpus.full, result.gpus.partial, result.gpus.idle) == (1, 1, 13)


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        replay_claims(load(ROOT / "examples" / "first-fit-strands"), "fgd")


PACKING = HERE / "claims" / "packing"


def _packing() -> Problem:
    inputs = read_inputs(
        [_text(PACKING / "cluster.yaml")], [_text(PACKING / "claims.yaml")], _text(PACKING / "policy.yaml")
    )
    return compile_problem(
        inputs.slices, inputs.classes, inputs.pending, nodes=inputs.nodes, policy=inputs.policy
    ).problem


@pytest.mark.parametrize("strategy", ["first-fit", "best-fit", "online"])
def test_small_claims_fill_partly_used_nodes(strategy: str) -> None:
    result = replay_claims(_packing(), strategy)
    assert result.failed == []
    assert result.gpus.full == 12 and result.curve[-1] == pytest.approx(100.0)


def test_batch_windows_fill_partly_used_nodes() -> None:
    result = replay_claims(_packing(), "batch", window=2)
    assert result.failed == []
