"""tests/scrape.py's histograms: PromQL's ``histogram_quantile`` answers, label sums and differences of scrapes."""

from __future__ import annotations

import math

import pytest

from tests.scrape import Histogram, histogram, histogram_quantile

INF = math.inf
PAGE = """\
# TYPE rpc_seconds histogram
rpc_seconds_bucket{method="/a/Prepare",code="OK",le="0.1"} 3
rpc_seconds_bucket{method="/a/Prepare",code="OK",le="0.5"} 4
rpc_seconds_bucket{method="/a/Prepare",code="OK",le="+Inf"} 4
rpc_seconds_sum{method="/a/Prepare",code="OK"} 0.45
rpc_seconds_count{method="/a/Prepare",code="OK"} 4
rpc_seconds_bucket{method="/a/Prepare",code="Unavailable",le="0.1"} 0
rpc_seconds_bucket{method="/a/Prepare",code="Unavailable",le="0.5"} 0
rpc_seconds_bucket{method="/a/Prepare",code="Unavailable",le="+Inf"} 1
rpc_seconds_sum{method="/a/Prepare",code="Unavailable"} 45
rpc_seconds_count{method="/a/Prepare",code="Unavailable"} 1
rpc_seconds_bucket{method="/a/Unprepare",code="OK",le="0.1"} 7
rpc_seconds_bucket{method="/a/Unprepare",code="OK",le="0.5"} 7
rpc_seconds_bucket{method="/a/Unprepare",code="OK",le="+Inf"} 7
rpc_seconds_sum{method="/a/Unprepare",code="OK"} 0.07
rpc_seconds_count{method="/a/Unprepare",code="OK"} 7
"""


@pytest.mark.parametrize(
    ("q", "buckets", "want"),
    [
        # every observation in the first bucket: the answer is the bucket's width times q, whatever they were
        (0.99, {0.1: 3, INF: 3}, (0.099, 0.0, 0.1)),
        (0.5, {0.1: 3, INF: 3}, (0.05, 0.0, 0.1)),
        # rank 2 of 4 falls in (1, 2], which holds observations 2 and 3: halfway
        (0.5, {1: 1, 2: 3, 4: 4, INF: 4}, (1.5, 1.0, 2.0)),
        (1.0, {1: 1, 2: 3, 4: 4, INF: 4}, (4.0, 2.0, 4.0)),
        # a rank in the +Inf bucket answers the highest finite bound
        (0.99, {1: 1, INF: 2}, (1.0, 1.0, INF)),
        # counts that go down are forced monotonic first
        (0.5, {1: 2, 2: 1, INF: 3}, (0.75, 0.0, 1.0)),
        # a first bound that is not positive is answered as such
        (0.1, {0: 1, 1: 2, INF: 2}, (0.0, 0.0, 0.0)),
        (-0.1, {1: 1, INF: 1}, (-INF, math.nan, math.nan)),
        (1.1, {1: 1, INF: 1}, (INF, math.nan, math.nan)),
    ],
)
def test_histogram_quantile_as_promql(q: float, buckets: dict[float, float], want: tuple[float, float, float]) -> None:
    got = histogram_quantile(q, Histogram(buckets))
    for g, w in zip(got, want, strict=True):
        assert (math.isnan(g) and math.isnan(w)) or g == pytest.approx(w)


@pytest.mark.parametrize("buckets", [{}, {1: 0, INF: 0}, {1: 1, 2: 1}, {INF: 3}])
def test_no_observations_no_inf_bucket_or_one_bucket_is_nan(buckets: dict[float, float]) -> None:
    assert all(math.isnan(x) for x in histogram_quantile(0.5, Histogram(buckets)))


def test_histogram_sums_the_label_sets_kept_and_subtracts_an_earlier_scrape() -> None:
    prepare = histogram(PAGE, "rpc_seconds", lambda labels: labels["method"].endswith("/Prepare"))
    assert prepare.buckets == {0.1: 3, 0.5: 4, INF: 5}
    assert (prepare.total, prepare.count) == (pytest.approx(45.45), 5)
    assert histogram(PAGE, "rpc_seconds").count == 12
    assert histogram(PAGE, "no_such_histogram") == Histogram()
    earlier = Histogram({0.1: 2, 0.5: 2, INF: 2}, 0.05, 2)
    since = prepare.minus(earlier)
    assert since.buckets == {0.1: 1, 0.5: 2, INF: 3}
    assert since.mean() == pytest.approx(45.4 / 3)
    assert math.isnan(Histogram().mean())
