"""Per-segment road conditions: what one drive along a road segment leaves in PostgreSQL, and that
replaying the drive changes nothing (real broker, worker, tritonserver and PostgreSQL)."""

from __future__ import annotations

import json
import time

import sqlalchemy as sa

from core.settings import Settings
from records.messages import GpsFix
from streams.sinks.tables import frame_observations, segment_road_conditions, segment_stats
from streams.windows import window_bounds
from tests.drives import SPEED_MPS, START, drive, quiet_segment, send
from tests.test_pipeline import engine, scenes_of, wait_rows


def snapshot(settings: Settings, segment_id: str) -> dict[str, list[dict]]:
    """The segment's rows of both tables, without their write times."""
    eng = engine(settings)
    try:
        with eng.connect() as conn:
            tables = {
                t.name: conn.execute(
                    sa.select(t).where(t.c.segment_id == segment_id).order_by(*t.primary_key.columns)
                ).all()
                for t in (segment_road_conditions, segment_stats)
            }
    finally:
        eng.dispose()
    # Through JSON, so that timestamps and the aspects' numbers compare as what a dashboard reads.
    plain = [
        (
            name,
            json.loads(
                json.dumps([{k: v for k, v in r._mapping.items() if k != "updated_at"} for r in rows], default=str)
            ),
        )
        for name, rows in tables.items()
    ]
    return dict(plain)


def every_fix_counted(fixes: list[GpsFix]):
    """Whether a snapshot shows the whole drive: a traffic window with every fix, and conditions with a speed.

    The drive lasts under 30 s from a round minute, so the traffic window starting then holds all of
    it; its last fixes arrive when the map matcher commits an idle vehicle (``match_idle_flush_s``).
    """

    def done(snap: dict) -> bool:
        stats, conditions = snap["segment_stats"], snap["segment_road_conditions"]
        return (
            max((r["fixes"] for r in stats), default=0) == len(fixes)
            and bool(conditions)
            and all(r["median_speed_kmh"] is not None for r in conditions)
        )

    return done


def settled(settings: Settings, segment_id: str, done, timeout_s: float = 90, quiet_s: float = 3) -> dict:
    """The segment's snapshot once ``done(snapshot)`` holds and it has not changed for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        snap = snapshot(settings, segment_id)
        if snap != last:
            last, since = snap, time.monotonic()
        elif done(snap) and time.monotonic() - since >= quiet_s:
            return snap
        time.sleep(0.5)
    raise AssertionError(f"segment {segment_id} not settled within {timeout_s}s: {last}")


def test_a_drive_along_a_segment_gives_its_road_conditions_at_each_window_length(settings, vehicle_id):
    segment = quiet_segment(vehicle_id)
    fixes, frames = drive(vehicle_id, segment)
    send(settings, fixes, frames)
    scenes = scenes_of(settings, {f.frame_id for f in frames}, len(frames))
    assert {s.segment_id for s in scenes} == {segment.segment_id}

    windows = settings.worker.condition_windows_s
    snap = settled(
        settings,
        segment.segment_id,
        lambda s: (
            len(s["segment_road_conditions"]) >= len(windows)
            and all(r["median_speed_kmh"] is not None for r in s["segment_road_conditions"])
        ),
    )

    rows = snap["segment_road_conditions"]
    by_scene = {s.frame_id: s for s in scenes}
    for row in rows:
        start, end = window_bounds(START, row["window_seconds"])
        in_window = [s for s in by_scene.values() if start <= s.captured_at < end]
        assert row["frames"] == len(in_window) and row["vehicles"] == 1
        for aspect, shares in row["aspects"].items():
            labels = [s.aspects[aspect].label for s in in_window]
            assert shares == {label: round(labels.count(label) / len(labels), 4) for label in set(labels)}
        assert row["dominant_surface"] in row["aspects"]["surface"]
        # Every fix says 36 km/h, so each traffic window's median, and their mean, is 36 km/h.
        assert abs(row["median_speed_kmh"] - SPEED_MPS * 3.6) < 0.5
    # The drive lasts under a minute from a round five minutes: one window of each length.
    assert [r["window_seconds"] for r in sorted(rows, key=lambda r: r["window_seconds"])] == windows


def test_replaying_a_drive_leaves_segment_road_conditions_and_segment_stats_identical(settings, vehicle_id):
    segment = quiet_segment(vehicle_id)
    fixes, frames = drive(vehicle_id, segment)
    ids = [f.frame_id for f in frames]
    send(settings, fixes, frames)
    scenes_of(settings, set(ids), len(frames))
    first = settled(settings, segment.segment_id, every_fix_counted(fixes))

    send(settings, fixes, frames)
    scenes_of(settings, set(ids), 2 * len(frames))  # every frame went through the pipeline twice
    wait_rows(settings, sa.select(frame_observations).where(frame_observations.c.frame_id.in_(ids)), len(ids))
    # Long enough for the replayed fixes to reach the segment windows (a silent vehicle's fixes are
    # committed after match_idle_flush_s) and to be flushed; any double count would show by then.
    deadline = time.monotonic() + settings.worker.match_idle_flush_s + 4 * settings.worker.segment_flush_s + 2
    while time.monotonic() < deadline:
        assert snapshot(settings, segment.segment_id) == first
        time.sleep(1)
