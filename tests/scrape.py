"""Reading a ``/metrics`` page (the Prometheus text format) in tests and benchmarks, with ``prometheus_client``'s own
parser; histograms and their quantiles as PromQL's ``histogram_quantile`` gives them."""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Samples:
    """Every sample of a page by name and labels, and every family's type."""

    values: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    def __call__(self, name: str, **labels: str) -> float:
        """The value of sample ``name{labels}``; KeyError, naming the samples of that name, when absent."""
        key = (name, frozenset(labels.items()))
        if key not in self.values:
            have = sorted(dict(ls) for n, ls in self.values if n == name)
            raise KeyError(f"no sample {name}{labels or ''}; samples of that name: {have}")
        return self.values[key]

    def names(self) -> set[str]:
        return {name for name, _ in self.values}


def parse(text: str) -> Samples:
    samples = Samples()
    for family in text_string_to_metric_families(text):
        samples.types[family.name] = family.type
        for sample in family.samples:
            samples.values[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def fetch(url: str) -> tuple[str, str]:
    """The page at ``url`` and its Content-Type."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode(), str(response.headers["Content-Type"])


def scrape(url: str) -> Samples:
    return parse(fetch(url)[0])


@dataclass
class Histogram:
    """One histogram of a page: cumulative bucket counts by upper bound (``+Inf`` included), sum and count."""

    buckets: dict[float, float] = field(default_factory=dict)
    total: float = 0.0
    count: float = 0.0

    def minus(self, before: Histogram) -> Histogram:
        """What was observed since ``before`` (an earlier scrape of the same histogram)."""
        return Histogram(
            {le: n - before.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.total - before.total,
            self.count - before.count,
        )

    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan


def histogram(text: str, name: str, keep: Callable[[dict[str, str]], bool] = lambda labels: True) -> Histogram:
    """The histogram ``name`` of a page, summed over the label sets (without ``le``) that ``keep`` accepts, as
    PromQL's ``sum by (le)`` does."""
    out = Histogram()
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if not keep({k: v for k, v in sample.labels.items() if k != "le"}):
                continue
            if sample.name == f"{name}_bucket":
                le = float(sample.labels["le"])
                out.buckets[le] = out.buckets.get(le, 0.0) + sample.value
            elif sample.name == f"{name}_sum":
                out.total += sample.value
            elif sample.name == f"{name}_count":
                out.count += sample.value
    return out


def histogram_quantile(q: float, hist: Histogram) -> tuple[float, float, float]:
    """``(value, lower, upper)``: the ``q`` quantile as Prometheus' ``histogram_quantile`` computes it
    (promql/quantile.go, ``bucketQuantile``), and the bounds of the bucket it fell in, which limit its precision.

    The rank ``q * count`` is looked up in the cumulative counts (forced monotonic first) and interpolated
    linearly inside its bucket; the lowest bucket starts at 0 (unless its bound is not positive: then the bound);
    a rank in the ``+Inf`` bucket answers the highest finite bound. NaN without observations or ``+Inf`` bucket."""
    if q < 0 or q > 1:
        return (-math.inf if q < 0 else math.inf, math.nan, math.nan)
    bounds = sorted(hist.buckets)
    if len(bounds) < 2 or bounds[-1] != math.inf:
        return (math.nan, math.nan, math.nan)
    counts, running = [], 0.0
    for le in bounds:
        running = max(running, hist.buckets[le])
        counts.append(running)
    if counts[-1] == 0:
        return (math.nan, math.nan, math.nan)
    rank = q * counts[-1]
    b = next(i for i, n in enumerate(counts) if n >= rank)
    if b == len(bounds) - 1:
        return (bounds[-2], bounds[-2], math.inf)
    if b == 0 and bounds[0] <= 0:
        return (bounds[0], bounds[0], bounds[0])
    start, count = 0.0, counts[b]
    if b > 0:
        start, count, rank = bounds[b - 1], count - counts[b - 1], rank - counts[b - 1]
    return (start + (bounds[b] - start) * (rank / count), start, bounds[b])
