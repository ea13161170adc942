"""Reading a service's Prometheus ``/metrics`` (the worker's, Triton's): parsed, never matched as text."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def scrape(port: int, timeout_s: float = 5.0, host: str = "127.0.0.1") -> list[Sample]:
    """Every sample that ``http://host:port/metrics`` serves; raises OSError when it does not answer."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout_s) as resp:
        text = resp.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def sample_value(samples: Iterable[Sample], name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` that has ``labels`` (among others); None when there is none."""
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None
