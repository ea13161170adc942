"""PostgreSQL sink: one transaction per batch, idempotent on natural keys.

Frame observations are inserted once per frame_id; alerts are merged into one row per incident
(``alert_store``); road conditions are recomputed as absolute values from the observations of every
touched (cell, window) and (segment, window, window length). Processing the same input twice
therefore leaves identical tables. A segment's road conditions take their speed from its traffic windows
(``segment_stats``), which another agent writes: whichever of the two writes second brings the speed
up to date.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import create_async_engine

from core.settings import Settings
from records.messages import Alert, Scene, SegmentWindow
from roads.network import Segment
from streams import metrics
from streams.sinks.alert_store import store_alert
from streams.sinks.tables import frame_observations, segment_stats
from streams.windows import window_bounds

# Means are summed in frame_id order: a float sum depends on its order, and a recomputed window must
# give the same value to the last digit however PostgreSQL happens to scan its rows (replays are tested).
_RECOMPUTE_ROAD_CONDITIONS = sa.text(
    """
    WITH touched AS (
        SELECT * FROM unnest(CAST(:cells AS text[]), CAST(:starts AS timestamptz[])) AS t(cell_id, window_start)
    )
    INSERT INTO road_conditions AS rc (
        cell_id, window_start, window_seconds, frames, vehicles, mean_speed_kmh, anomaly_frames,
        dominant_surface, dominant_weather, mean_congestion, updated_at)
    SELECT t.cell_id, t.window_start, :window_s, count(*), count(DISTINCT o.vehicle_id),
           avg(o.speed_mps ORDER BY o.frame_id) * 3.6,
           count(*) FILTER (WHERE o.anomaly_score >= :threshold),
           mode() WITHIN GROUP (ORDER BY o.aspects ->> 'surface'),
           mode() WITHIN GROUP (ORDER BY o.aspects ->> 'weather_lighting'),
           avg(o.congestion_level ORDER BY o.frame_id), now()
    FROM touched t
    JOIN frame_observations o
      ON o.cell_id = t.cell_id
     AND o.captured_at >= t.window_start
     AND o.captured_at < t.window_start + make_interval(secs => :window_s)
    GROUP BY t.cell_id, t.window_start
    ON CONFLICT (cell_id, window_start, window_seconds) DO UPDATE SET
        frames = EXCLUDED.frames, vehicles = EXCLUDED.vehicles, mean_speed_kmh = EXCLUDED.mean_speed_kmh,
        anomaly_frames = EXCLUDED.anomaly_frames, dominant_surface = EXCLUDED.dominant_surface,
        dominant_weather = EXCLUDED.dominant_weather, mean_congestion = EXCLUDED.mean_congestion,
        updated_at = EXCLUDED.updated_at
    """
)


# Fix-weighted mean of the median speeds of the segment's traffic windows that start in each
# (segment, window) of the ``touched`` CTE.
_SEGMENT_SPEED = """
    SELECT t.segment_id, t.window_start, t.window_seconds,
           sum(s.median_speed_kmh * s.fixes) / nullif(sum(s.fixes) FILTER (WHERE s.median_speed_kmh IS NOT NULL), 0)
               AS median_speed_kmh
    FROM touched t
    JOIN segment_stats s
      ON s.segment_id = t.segment_id
     AND s.window_seconds = :traffic_window_s
     AND s.window_start >= t.window_start
     AND s.window_start < t.window_start + make_interval(secs => t.window_seconds)
    GROUP BY t.segment_id, t.window_start, t.window_seconds
"""
_TOUCHED_SEGMENT_WINDOWS = """
    SELECT * FROM unnest(CAST(:segments AS text[]), CAST(:starts AS timestamptz[]), CAST(:lengths AS int[]))
        AS t(segment_id, window_start, window_seconds)
"""

_RECOMPUTE_SEGMENT_ROAD_CONDITIONS = sa.text(
    f"""
    WITH touched AS ({_TOUCHED_SEGMENT_WINDOWS}),
    obs AS (
        SELECT t.segment_id, t.window_start, t.window_seconds, o.frame_id, o.vehicle_id, o.anomaly_score, o.aspects,
               o.congestion_level
        FROM touched t
        JOIN frame_observations o
          ON o.segment_id = t.segment_id
         AND o.captured_at >= t.window_start
         AND o.captured_at < t.window_start + make_interval(secs => t.window_seconds)
    ),
    label_shares AS (
        SELECT segment_id, window_start, window_seconds, a.key AS aspect, a.value AS label,
               count(*)::numeric / sum(count(*)) OVER (PARTITION BY segment_id, window_start, window_seconds, a.key)
                   AS share
        FROM obs CROSS JOIN LATERAL jsonb_each_text(obs.aspects) AS a
        GROUP BY segment_id, window_start, window_seconds, a.key, a.value
    ),
    distributions AS (
        SELECT segment_id, window_start, window_seconds, jsonb_object_agg(aspect, labels) AS aspects
        FROM (
            SELECT segment_id, window_start, window_seconds, aspect,
                   jsonb_object_agg(label, round(share, 4) ORDER BY label) AS labels
            FROM label_shares
            GROUP BY segment_id, window_start, window_seconds, aspect
        ) per_aspect
        GROUP BY segment_id, window_start, window_seconds
    ),
    counts AS (
        SELECT segment_id, window_start, window_seconds, count(*) AS frames, count(DISTINCT vehicle_id) AS vehicles,
               count(*) FILTER (WHERE anomaly_score >= :threshold) AS anomaly_frames,
               mode() WITHIN GROUP (ORDER BY aspects ->> 'surface') AS dominant_surface,
               mode() WITHIN GROUP (ORDER BY aspects ->> 'weather_lighting') AS dominant_weather,
               mode() WITHIN GROUP (ORDER BY aspects ->> 'congestion') AS dominant_congestion,
               avg(congestion_level ORDER BY frame_id) AS congestion_level
        FROM obs
        GROUP BY segment_id, window_start, window_seconds
    ),
    speeds AS ({_SEGMENT_SPEED})
    INSERT INTO segment_road_conditions AS rc (
        segment_id, window_start, window_seconds, frames, vehicles, anomaly_frames, aspects, dominant_surface,
        dominant_weather, dominant_congestion, congestion_level, median_speed_kmh, updated_at)
    SELECT c.segment_id, c.window_start, c.window_seconds, c.frames, c.vehicles, c.anomaly_frames, d.aspects,
           c.dominant_surface, c.dominant_weather, c.dominant_congestion, c.congestion_level, sp.median_speed_kmh,
           now()
    FROM counts c
    JOIN distributions d USING (segment_id, window_start, window_seconds)
    LEFT JOIN speeds sp USING (segment_id, window_start, window_seconds)
    ON CONFLICT (segment_id, window_start, window_seconds) DO UPDATE SET
        frames = EXCLUDED.frames, vehicles = EXCLUDED.vehicles, anomaly_frames = EXCLUDED.anomaly_frames,
        aspects = EXCLUDED.aspects, dominant_surface = EXCLUDED.dominant_surface,
        dominant_weather = EXCLUDED.dominant_weather, dominant_congestion = EXCLUDED.dominant_congestion,
        congestion_level = EXCLUDED.congestion_level, median_speed_kmh = EXCLUDED.median_speed_kmh,
        updated_at = EXCLUDED.updated_at
    """
)

_UPDATE_SEGMENT_SPEEDS = sa.text(
    f"""
    WITH touched AS ({_TOUCHED_SEGMENT_WINDOWS}),
    speeds AS ({_SEGMENT_SPEED})
    UPDATE segment_road_conditions rc
    SET median_speed_kmh = sp.median_speed_kmh, updated_at = now()
    FROM speeds sp
    WHERE rc.segment_id = sp.segment_id AND rc.window_start = sp.window_start
      AND rc.window_seconds = sp.window_seconds AND rc.median_speed_kmh IS DISTINCT FROM sp.median_speed_kmh
    """
)


# SQLSTATE classes that blame the server or the session, not the data: connection exceptions (08),
# operator intervention such as a shutdown or restart (57P), insufficient resources (53), a login or
# database refused (28, 3D: a configuration fault, waited on visibly rather than dead-lettering every
# scene) and transaction rollbacks such as deadlocks (40: the same statement may succeed again).
_OUTAGE_SQLSTATES = ("08", "57P", "53", "28", "3D", "40")


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says PostgreSQL cannot serve us now (wait for it), not that it rejected the data."""
    if isinstance(exc, OSError | DisconnectionError | OperationalError | InterfaceError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return exc.connection_invalidated or (isinstance(code, str) and code.startswith(_OUTAGE_SQLSTATES))
    return False


def segment_condition_windows(at: Sequence[tuple[str, datetime]], lengths: Sequence[int]) -> dict[str, list[Any]]:
    """Bind parameters naming each (segment, window start, window length) that times ``at`` fall in."""
    touched = sorted({(seg, window_bounds(t, n)[0], n) for seg, t in at for n in lengths})
    segments, starts, windows = (list(c) for c in zip(*touched, strict=True)) if touched else ([], [], [])
    return {"segments": segments, "starts": starts, "lengths": windows}


def observation_row(scene: Scene) -> dict[str, Any]:
    """The frame_observations row of a scene."""
    congestion = scene.aspects["congestion"].probs
    levels = list(congestion.values())
    expected = sum(i * p for i, p in enumerate(levels)) / max(len(levels) - 1, 1)
    return {
        "frame_id": scene.frame_id,
        "vehicle_id": scene.vehicle_id,
        "captured_at": scene.captured_at,
        "lat": scene.gps.lat if scene.gps else None,
        "lon": scene.gps.lon if scene.gps else None,
        "cell_id": scene.cell_id,
        "segment_id": scene.segment_id,
        "speed_mps": scene.gps.speed_mps if scene.gps else None,
        "anomaly_score": scene.anomaly.score,
        "anomaly_type": scene.anomaly.type,
        "aspects": {k: v.label for k, v in scene.aspects.items()},
        "congestion_level": expected,
    }


class PostgresSink:
    """Writes scenes and alerts of one batch in a single transaction."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_async_engine(
            settings.postgres.url("asyncpg"), pool_size=settings.postgres.pool_size, pool_pre_ping=True
        )

    async def close(self) -> None:
        await self.engine.dispose()

    async def write(self, scenes: Sequence[Scene], new_alerts: Iterable[Alert]) -> list[Alert]:
        """Persist a batch; return each alert as merged in the table (what consumers should see)."""
        w = self.settings.worker
        async with self.engine.begin() as conn:
            rows = [observation_row(s) for s in scenes]
            if rows:
                await conn.execute(insert(frame_observations).on_conflict_do_nothing(), rows)
            merged = [await store_alert(conn, a, w.alert_cooldown_s) for a in new_alerts]
            touched = {(s.cell_id, window_bounds(s.captured_at, w.road_window_s)[0]) for s in scenes if s.cell_id}
            if touched:
                cells, starts = zip(*sorted(touched), strict=True)
                await conn.execute(
                    _RECOMPUTE_ROAD_CONDITIONS,
                    {
                        "cells": list(cells),
                        "starts": list(starts),
                        "window_s": w.road_window_s,
                        "threshold": w.anomaly_threshold,
                    },
                )
            segment_windows = segment_condition_windows(
                [(s.segment_id, s.captured_at) for s in scenes if s.segment_id], w.condition_windows_s
            )
            if segment_windows["segments"]:
                await conn.execute(
                    _RECOMPUTE_SEGMENT_ROAD_CONDITIONS,
                    segment_windows | {"threshold": w.anomaly_threshold, "traffic_window_s": w.segment_window_s},
                )
        metrics.SINK_ROWS.labels("frame_observations").inc(len(rows))
        metrics.SINK_ROWS.labels("alerts").inc(len(merged))
        metrics.SINK_ROWS.labels("road_conditions").inc(len(touched))
        metrics.SINK_ROWS.labels("segment_road_conditions").inc(len(segment_windows["segments"]))
        return merged

    async def write_segment_stats(self, windows: Sequence[tuple[SegmentWindow, Segment]]) -> None:
        """Upsert segment windows as absolute values (writing one twice leaves the same row)."""
        if not windows:
            return
        rows = [segment_stats_row(w, seg) for w, seg in windows]
        stmt = insert(segment_stats)
        keys = {"segment_id", "window_start", "window_seconds"}
        stmt = stmt.on_conflict_do_update(
            index_elements=sorted(keys),
            set_={c: stmt.excluded[c] for c in rows[0] if c not in keys} | {"updated_at": sa.func.now()},
        )
        touched = segment_condition_windows(
            [(w.segment_id, w.window_start) for w, _ in windows], self.settings.worker.condition_windows_s
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt, rows)
            await conn.execute(
                _UPDATE_SEGMENT_SPEEDS, touched | {"traffic_window_s": self.settings.worker.segment_window_s}
            )
        metrics.SINK_ROWS.labels("segment_stats").inc(len(rows))


def segment_stats_row(window: SegmentWindow, segment: Segment) -> dict[str, Any]:
    """The segment_stats row of a window, with the segment's static attributes."""
    speed = window.median_speed_mps
    return {
        "segment_id": window.segment_id,
        "window_start": window.window_start,
        "window_seconds": window.window_seconds,
        "fixes": window.fixes,
        "vehicles": window.vehicles,
        "trajectories": window.trajectories,
        "median_speed_kmh": speed * 3.6 if speed is not None else None,
        "hard_brakes": window.hard_brakes,
        "name": segment.name or None,
        "road_class": segment.road_class,
        "lanes": segment.lanes,
        "speed_limit_kmh": segment.speed_limit_kmh,
        "length_m": round(segment.length_m, 1),
    }
