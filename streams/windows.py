"""Tumbling time windows shared by alerts and road-condition aggregation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def window_bounds(at: datetime, window_s: int) -> tuple[datetime, datetime]:
    """Start and end of the ``window_s``-second window (aligned to the epoch) containing ``at``."""
    epoch = int(at.timestamp()) // window_s * window_s
    start = datetime.fromtimestamp(epoch, timezone.utc)
    return start, start + timedelta(seconds=window_s)
