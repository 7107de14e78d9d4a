from __future__ import annotations

from collections import Counter

from solver.simulate.patterns import efficient_patterns, parts


def test_the_optimal_packing_pairs_shares_that_fill_a_gpu() -> None:
    assert efficient_patterns({600: 3, 400: 3}) == [(400, 600)]
    assert efficient_patterns({810: 5, 190: 5}) == [(190, 810)]
    assert efficient_patterns({500: 4}) == [(500, 500)]


def test_the_mix_decides_the_partners() -> None:
    # 650s want a 320; the 470s pair with each other
    got = set(efficient_patterns(Counter({650: 10, 320: 10, 470: 10})))
    assert got == {(320, 650), (470, 470)}


def test_nothing_to_pack() -> None:
    assert efficient_patterns({}) == []
    assert efficient_patterns({300: 0}) == []


def test_parts_are_every_sub_multiset() -> None:
    assert parts([(400, 600)]) == {(400,), (600,), (400, 600)}
    assert parts([(230, 230, 550)]) == {(230,), (550,), (230, 230), (230, 550), (230, 230, 550)}
