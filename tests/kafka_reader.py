"""Reading topics in tests: collect records matching a predicate, with a bounded wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from core.settings import Settings
from streams.reader import topic_reader


def read_until(
    settings: Settings,
    topic: str,
    match: Callable[[Any], bool],
    count: int,
    timeout_s: float = 90.0,
    settle_s: float = 0.0,
) -> list[Any]:
    """Records of ``topic`` (from the beginning) for which ``match(record)`` holds; returns once
    ``count`` are found (and, with ``settle_s``, nothing more arrived for that long) or fails after
    ``timeout_s``."""
    consumer = topic_reader(settings, topic)
    found: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            before = len(found)
            for records in consumer.poll(timeout_ms=500).values():
                found.extend(r for r in records if match(r))
            if len(found) != before:
                quiet_since = time.monotonic()
            if len(found) >= count and time.monotonic() - quiet_since >= settle_s:
                break
    finally:
        consumer.close()
    assert len(found) >= count, f"found {len(found)} of {count} expected records on {topic} within {timeout_s}s"
    return found
