"""Time windows shared by alerts, road conditions and the segment traffic windows.

Window arithmetic is done here rather than with Faust's window classes: Faust's compiled
``HoppingWindow.ranges`` keeps ``timestamp / step`` in a C ``int``, which wraps for times past the
year 4000 and then lists billions of ranges (a GPS fix dated 9999 took the worker to 22 GB). These
functions cost the same whatever the time: a hopping window yields ``size / step`` ranges, always.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

WindowRange = tuple[float, float]


def window_bounds(at: datetime, window_s: int) -> tuple[datetime, datetime]:
    """Start and end of the ``window_s``-second window (aligned to the epoch) containing ``at``."""
    epoch = int(at.timestamp()) // window_s * window_s
    start = datetime.fromtimestamp(epoch, timezone.utc)
    return start, start + timedelta(seconds=window_s)


def hopping_ranges(timestamp: float, size: int, step: int) -> list[WindowRange]:
    """Every hopping window (``size`` s long, one starting every ``step`` s) that contains ``timestamp``.

    Ranges are ``(start, start + size - 0.1)``, the keys Faust's windowed tables use, oldest first.
    """
    if not math.isfinite(timestamp):
        raise ValueError(f"window of a non-finite time {timestamp!r}")
    newest = math.floor(timestamp / step) * step
    return [(float(start), start + size - 0.1) for start in range(newest - size + step, newest + 1, step)]


def earliest_range(timestamp: float, size: int, step: int) -> WindowRange:
    """The oldest window containing ``timestamp`` (the one with the most history before it)."""
    return hopping_ranges(timestamp, size, step)[0]
