"""The spatio-temporal context vector sent to st_clip, and the grid cell used for aggregation.

Layout is ``models.vocab.ST_CONTEXT_FIELDS``. Until map matching and segment windows land, the
segment fields are 0; ``has_context`` = 0 is the explicit "no context" input.
"""

from __future__ import annotations

import math

from models.vocab import ST_CONTEXT_DIM, ST_CONTEXT_FIELDS
from streams.schema import AttachedFix, Frame

_INDEX = {name: i for i, name in enumerate(ST_CONTEXT_FIELDS)}


def context_vector(frame: Frame, fix: AttachedFix | None, tolerance_s: float) -> list[float]:
    """ST context for one frame: all zeros (has_context=0) without a fix."""
    vec = [0.0] * ST_CONTEXT_DIM
    if fix is None:
        return vec
    hour = frame.captured_at.hour + frame.captured_at.minute / 60
    heading = math.radians(fix.heading_deg or 0.0)
    values = {
        "has_context": 1.0,
        "speed_norm": min((fix.speed_mps or 0.0) / 30.0, 2.0),
        "heading_sin": math.sin(heading),
        "heading_cos": math.cos(heading),
        "accuracy_norm": min((fix.accuracy_m or 0.0) / 50.0, 2.0),
        "hour_sin": math.sin(2 * math.pi * hour / 24),
        "hour_cos": math.cos(2 * math.pi * hour / 24),
        "weekday_norm": frame.captured_at.weekday() / 6,
        "fix_age_norm": min(abs(fix.offset_s) / tolerance_s, 1.0),
    }
    for name, value in values.items():
        vec[_INDEX[name]] = float(value)
    return vec


def cell_id(lat: float, lon: float, cell_deg: float) -> str:
    """Grid cell of a position: ``<row>:<col>`` in units of ``cell_deg`` degrees."""
    return f"{math.floor(lat / cell_deg)}:{math.floor(lon / cell_deg)}"
