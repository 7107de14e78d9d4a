from __future__ import annotations

from collections import Counter

import pytest

from gpupolicy.solver.simulate.patterns import OnTrack, efficient_patterns, optimal_packing


def test_the_optimal_packing_pairs_shares_that_fill_a_gpu() -> None:
    assert efficient_patterns({600: 3, 400: 3}) == [(400, 600)]
    assert efficient_patterns({810: 5, 190: 5}) == [(190, 810)]
    assert efficient_patterns({500: 4}) == [(500, 500)]


def test_the_mix_decides_the_partners() -> None:
    # 650s want a 320; the 470s pair with each other
    got = set(efficient_patterns(Counter({650: 10, 320: 10, 470: 10})))
    assert got == {(320, 650), (470, 470)}


def test_the_packing_says_how_many_gpus_each_pattern_fills() -> None:
    counts = Counter({500: 4, 300: 3})
    found = optimal_packing(counts)
    assert found == pytest.approx({(500, 500): 2.0, (300, 300, 300): 1.0})  # 3 GPUs; no mix wastes less
    assert efficient_patterns(counts) == list(found)


def test_nothing_to_pack() -> None:
    assert efficient_patterns({}) == []
    assert efficient_patterns({300: 0}) == []


def test_on_track_means_part_of_some_pattern() -> None:
    track = OnTrack([(400, 600), (230, 230, 550)])
    for part in [(400,), (600,), (400, 600), (230,), (230, 230), (230, 550), (230, 230, 550)]:
        assert part in track
    for off in [(400, 400), (230, 230, 230), (230, 600), (550, 600)]:
        assert off not in track
    assert not OnTrack([])
