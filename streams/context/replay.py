"""The ST context the worker would attach to each frame, computed offline from a recorded GPS stream.

Training ST-CLIP on the vectors the pipeline will send it avoids train/serve skew, so this replays a
dataset's fixes in delivery order through the worker's own parts: the per-vehicle tracks (map matcher
and kinematics), the nearest-fix join, the segment's hopping windows and ``st_vector``. Each frame is
joined once the fixes delivered up to ``captured_at + gps_tolerance_s`` are in, as the live join waits
for a fix that near in time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from records.messages import GpsFix
from roads.network import RoadNetwork
from streams.context.gps_track import Row, add_fix, nearest_fix
from streams.context.segment_windows import WindowValue, as_of, merged, window_stats
from streams.context.st_vector import context_vector, with_window
from streams.context.vehicle_track import TrackPoint, VehicleTracks
from streams.windows import WindowRange, earliest_range, hopping_ranges


def replay_contexts(
    network: RoadNetwork,
    fixes: Sequence[tuple[datetime, GpsFix]],
    frames: Sequence[tuple[str, datetime]],
    *,
    gps_noise_m: float = 5.0,
    gps_tolerance_s: float = 2.0,
    window_s: int = 60,
    hop_s: int = 30,
    keep_fixes: int = 300,
) -> list[list[float]]:
    """ST context vectors for ``frames`` (vehicle id, capture time) of one run of a fleet.

    ``fixes`` are (delivery time, fix) pairs; vehicle ids must be unique within the run. Returns one
    vector per frame, in the order given (layout ``models.vocab.ST_CONTEXT_FIELDS``).
    """
    tracks = VehicleTracks(network, sigma_m=max(gps_noise_m, 1.0))
    history: dict[str, list[Row]] = defaultdict(list)
    windows: dict[tuple[str, WindowRange], WindowValue] = {}

    def count(points: list[TrackPoint]) -> None:
        for p in points:
            for window in hopping_ranges(p.ts.timestamp(), window_s, hop_s):
                key = (p.segment.segment_id, window)
                windows[key] = merged(windows.get(key, {}), [p.observation()])

    join_delay = timedelta(seconds=gps_tolerance_s)
    events: list[tuple[datetime, int, int]] = [(at, 0, i) for i, (at, _) in enumerate(fixes)]
    events += [(at + join_delay, 1, i) for i, (_, at) in enumerate(frames)]
    out: list[list[float]] = [[] for _ in frames]
    for _, kind, i in sorted(events):
        if kind == 0:
            fix = fixes[i][1]
            add_fix(history[fix.vehicle_id], fix, keep_fixes)
            count(tracks.push_all([fix]))
            continue
        vehicle_id, captured_at = frames[i]
        attached = nearest_fix(history[vehicle_id], captured_at, gps_tolerance_s)
        located = tracks.located(vehicle_id, attached.ts) if attached else None
        vec = context_vector(captured_at, attached, gps_tolerance_s, located.segment if located else None)
        if located is not None:
            window = earliest_range(captured_at.timestamp(), window_s, hop_s)
            value = as_of(windows.get((located.segment.segment_id, window), {}), (captured_at + join_delay).timestamp())
            if value:
                vec = with_window(vec, window_stats(located.segment.segment_id, window, window_s, value))
        out[i] = vec
    return out
