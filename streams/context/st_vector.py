"""The spatio-temporal context vector sent to st_clip, and the grid cell used for aggregation.

Layout is ``models.vocab.ST_CONTEXT_FIELDS``: the vehicle's fix and time (frame ingest), the static
attributes of its road segment (frame ingest, from map matching) and that segment's current traffic
window (the inference agent, on the worker that owns the segment's windows). ``has_context`` = 0 is
the explicit "no context" input; parts that are unknown (no segment, no window yet) stay 0.
"""

from __future__ import annotations

import math
from datetime import datetime

from models.vocab import ST_CONTEXT_DIM, ST_CONTEXT_FIELDS
from records.messages import AttachedFix, SegmentWindow
from roads.network import ROAD_CLASSES, Segment

_INDEX = {name: i for i, name in enumerate(ST_CONTEXT_FIELDS)}


def _set(vec: list[float], values: dict[str, float]) -> list[float]:
    for name, value in values.items():
        vec[_INDEX[name]] = float(value)
    return vec


def context_vector(
    captured_at: datetime, fix: AttachedFix | None, tolerance_s: float, segment: Segment | None
) -> list[float]:
    """ST context of a frame taken at ``captured_at``, without the window part; all 0 (has_context=0) without a fix."""
    vec = [0.0] * ST_CONTEXT_DIM
    if fix is None:
        return vec
    hour = captured_at.hour + captured_at.minute / 60
    heading = math.radians(fix.heading_deg or 0.0)
    _set(
        vec,
        {
            "has_context": 1.0,
            "speed_norm": min((fix.speed_mps or 0.0) / 30.0, 2.0),
            "heading_sin": math.sin(heading),
            "heading_cos": math.cos(heading),
            "accuracy_norm": min((fix.accuracy_m or 0.0) / 50.0, 2.0),
            "hour_sin": math.sin(2 * math.pi * hour / 24),
            "hour_cos": math.cos(2 * math.pi * hour / 24),
            "weekday_norm": captured_at.weekday() / 6,
            "fix_age_norm": min(abs(fix.offset_s) / tolerance_s, 1.0),
        },
    )
    if segment is not None:
        _set(
            vec,
            {
                "road_class_norm": (ROAD_CLASSES.index(segment.road_class) + 1) / len(ROAD_CLASSES),
                "lanes_norm": min(segment.lanes / 4, 2.0),
                "speed_limit_norm": min(segment.speed_limit_kmh / 130, 1.0),
                "segment_length_norm": min(segment.length_m / 500, 2.0),
                "out_degree_norm": min(segment.out_degree / 4, 2.0),
            },
        )
    return vec


def with_window(vec: list[float], window: SegmentWindow | None) -> list[float]:
    """The vector with its segment-window part filled in (left 0 when the segment has no window yet)."""
    if window is None:
        return vec
    speed = window.median_speed_mps
    return _set(
        list(vec),
        {
            "window_vehicles_norm": min(window.vehicles / 20, 2.0),
            "window_median_speed_norm": min(speed / 30.0, 2.0) if speed is not None else 0.0,
        },
    )


def cell_id(lat: float, lon: float, cell_deg: float) -> str:
    """Grid cell of a position: ``<row>:<col>`` in units of ``cell_deg`` degrees."""
    return f"{math.floor(lat / cell_deg)}:{math.floor(lon / cell_deg)}"
