"""Bounded waits for a condition in tests: poll, and fail saying what did not happen in time."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.2) -> None:
    """Return once ``condition()`` is true; fail with ``not {what} after {timeout_s}s`` when it is not in time."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not {what} after {timeout_s:.0f}s"
        time.sleep(poll_s)
