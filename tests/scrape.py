"""Reading a ``/metrics`` page (the Prometheus text format) in tests, with ``prometheus_client``'s own parser."""

from __future__ import annotations

import urllib.request
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
