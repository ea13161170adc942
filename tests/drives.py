"""Drives along a road segment for the pipeline tests: a fix a second, a frame every third second.

One module that every test imports as ``tests.drives``, so the segments already driven along in this
run are one set: pytest collects a test file as a module of its own name, and a file importing it as
``tests.<name>`` got a second copy with a second set (two tests once drove the same segment at once).
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from functools import cache

from core.settings import Settings
from records.messages import Frame, GpsFix
from roads.network import RoadNetwork, Segment, load_network
from streams.producer import FleetProducer
from tests.frames import sample_camera, sample_jpeg
from tests.test_pipeline import T0

# Five minutes after the other pipeline tests' drives: late enough to be in windows of its own, and
# well within the segment windows' event-time horizon of theirs (segment_window_keep_s).
START = T0 + timedelta(minutes=5)
SPEED_MPS = 10.0


@cache
def network() -> RoadNetwork:
    """The worker's road network, loaded once for these tests (parsing it takes seconds)."""
    return load_network()


_taken: set[tuple[float, float]] = set()  # the ends of segments earlier tests in this run drove along


def quiet_segment(seed: str) -> Segment:
    """A long segment away from where the other pipeline tests drive (60.17 N, 24.94 E), and from
    segments earlier tests here drove along: two drives on one segment at the same time would share
    its windows (a chance pick once did, and the replay test saw two vehicles' fixes)."""
    x0, y0 = network().projection.to_xy(60.17, 24.94)
    far = [
        s
        for s in network().segments
        if s.length_m >= 200
        and s.road_class not in ("motorway", "trunk")
        and math.dist(s.xy[0], (x0, y0)) > 800
        and not _taken & ends(s)
    ]
    chosen = random.Random(seed).choice(far)
    _taken.update(ends(chosen))
    return chosen


def ends(segment: Segment) -> set[tuple[float, float]]:
    return {(float(x), float(y)) for x, y in (segment.xy[0], segment.xy[-1])}


def drive(vehicle_id: str, segment: Segment) -> tuple[list[GpsFix], list[Frame]]:
    """A fix a second along ``segment`` at 36 km/h, and a frame every third second."""
    lat_lon = network().projection.to_latlon
    fixes, frames = [], []
    for n in range(int(min(segment.length_m - 20, 300) / SPEED_MPS)):
        x, y, heading = segment.point_at(10 + n * SPEED_MPS)
        lat, lon = lat_lon(x, y)
        at = START + timedelta(seconds=n)
        fixes.append(
            GpsFix(
                vehicle_id=vehicle_id,
                ts=at,
                lat=float(lat),
                lon=float(lon),
                speed_mps=SPEED_MPS,
                heading_deg=heading,
                accuracy_m=5.0,
            )
        )
        if n % 3 == 1:
            frames.append(
                Frame(
                    vehicle_id=vehicle_id,
                    frame_id=f"{vehicle_id}-f{n}",
                    captured_at=at + timedelta(milliseconds=200),
                    jpeg=sample_jpeg(n),
                    camera=sample_camera(n),
                )
            )
    return fixes, frames


def send(settings: Settings, fixes: list[GpsFix], frames: list[Frame]) -> None:
    with FleetProducer(settings) as producer:
        for fix in fixes:
            producer.send_gps(fix)
        producer.flush()
        for frame in frames:
            producer.send_frame(frame)
