from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from gpupolicy.solver.simulate import frag
from gpupolicy.solver.simulate.protocol import PodTypes

CASES = yaml.safe_load((Path(__file__).parent / "frag_cases.yaml").read_text())


def _types(rows: list[dict[str, Any]]) -> PodTypes:
    def col(k: str) -> np.ndarray:
        return np.array([r[k] for r in rows], dtype=np.int64)

    return PodTypes(col("cpu"), col("milli"), col("num"), col("mask"), np.array([r["weight"] for r in rows]))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_fgd_fragmentation_by_hand(case: dict[str, Any]) -> None:
    node = case["node"]
    got = frag.fgd(
        np.array([node["cpu"]], dtype=np.int64),
        np.array([node["bits"]], dtype=np.int64),
        np.array([node["free"]], dtype=np.int64),
        _types(case["types"]),
    )
    assert got[0] == pytest.approx(case["want"])


def test_stranded_is_idle_no_gpu_type_can_use() -> None:
    types = _types(
        [
            {"cpu": 1000, "milli": 500, "num": 1, "mask": 1, "weight": 0.5},
            {"cpu": 1000, "milli": 200, "num": 1, "mask": 1, "weight": 0.5},
        ]
    )
    free = np.array([[1000, 150, 300]], dtype=np.int64)
    # the 200 share uses everything but the 150 GPU
    assert frag.stranded(np.array([4000]), np.array([1]), free, types)[0] == 150
    # without CPU nothing fits: all idle is stranded
    assert frag.stranded(np.array([0]), np.array([1]), free, types)[0] == 1450


def test_fill_counts_cpu_that_strands_gpus() -> None:
    types = _types([{"cpu": 4000, "milli": 1000, "num": 1, "mask": 1, "weight": 1.0}])
    free = np.array([[1000, 1000, 1000, 1000]], dtype=np.int64)
    # CPU for two such pods: two GPUs would stay idle
    got = frag.fill(np.array([8000]), np.array([10**6]), np.array([1]), free, types)
    assert got[0] == 2000
