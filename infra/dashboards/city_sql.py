"""The SQL of every city panel, as constants the tests run on a real database as the dashboard role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class CityQuery:
    """One city panel's SQL, its Grafana result format and the columns the panel reads, in order."""

    sql: str
    format: Literal["table", "time_series"]
    columns: tuple[str, ...]


ROAD_CONDITIONS = CityQuery(
    """
SELECT c.segment_id,
       c.window_start AS "time",
       c.window_seconds,
       c.frames,
       c.vehicles,
       c.anomaly_frames,
       c.dominant_surface,
       c.dominant_weather,
       c.dominant_congestion,
       c.congestion_level,
       c.median_speed_kmh,
       p.lat,
       p.lon
FROM current_road_conditions c
CROSS JOIN LATERAL (
    SELECT avg(f.lat) AS lat, avg(f.lon) AS lon
    FROM frame_observations f
    WHERE f.segment_id = c.segment_id
      AND f.captured_at >= c.window_start AND f.captured_at < c.window_end
) p
WHERE c.window_seconds = (SELECT min(window_seconds) FROM segment_road_conditions)
  AND c.window_end > $__timeFrom() AND c.window_start < $__timeTo()
  AND p.lat IS NOT NULL
ORDER BY c.congestion_level DESC, c.segment_id
""".strip(),
    "table",
    (
        "segment_id",
        "time",
        "window_seconds",
        "frames",
        "vehicles",
        "anomaly_frames",
        "dominant_surface",
        "dominant_weather",
        "dominant_congestion",
        "congestion_level",
        "median_speed_kmh",
        "lat",
        "lon",
    ),
)

OPEN_INCIDENT_COUNT = CityQuery("SELECT count(*) AS open_incidents FROM open_incidents", "table", ("open_incidents",))

OPEN_INCIDENTS = CityQuery(
    """
SELECT o.window_start AS "time",
       o.type,
       o.severity,
       o.confidence,
       o.vehicle_count,
       array_to_string(a.vehicles, ', ') AS vehicles,
       o.segment_id,
       o.frames,
       o.window_end,
       o.updated_at
FROM open_incidents o
JOIN alerts a ON a.alert_id = o.alert_id
ORDER BY o.updated_at DESC, o.alert_id
LIMIT 500
""".strip(),
    "table",
    (
        "time",
        "type",
        "severity",
        "confidence",
        "vehicle_count",
        "vehicles",
        "segment_id",
        "frames",
        "window_end",
        "updated_at",
    ),
)

SEGMENT_SPEEDS = CityQuery(
    """
SELECT window_start AS "time",
       road_class,
       sum(median_speed_kmh * fixes) / sum(fixes) AS speed_kmh
FROM segment_stats
WHERE $__timeFilter(window_start) AND median_speed_kmh IS NOT NULL
GROUP BY window_start, road_class
ORDER BY 1, 2
""".strip(),
    "time_series",
    ("time", "road_class", "speed_kmh"),
)

SLOWEST_SEGMENT_SPEEDS = CityQuery(
    """
SELECT s.window_start AS "time",
       concat_ws(' ', s.name, s.segment_id) AS segment,
       s.median_speed_kmh AS speed_kmh
FROM segment_stats s
WHERE $__timeFilter(s.window_start) AND s.median_speed_kmh IS NOT NULL
  AND s.segment_id IN (
    SELECT segment_id
    FROM segment_stats
    WHERE $__timeFilter(window_start) AND median_speed_kmh IS NOT NULL AND speed_limit_kmh > 0
    GROUP BY segment_id
    ORDER BY avg(median_speed_kmh / speed_limit_kmh), segment_id
    LIMIT 10
  )
ORDER BY 1, 2
""".strip(),
    "time_series",
    ("time", "segment", "speed_kmh"),
)

SLOWEST_SEGMENTS = CityQuery(
    """
SELECT segment_id,
       name,
       road_class,
       median_speed_kmh,
       speed_limit_kmh,
       median_speed_kmh / speed_limit_kmh AS share_of_limit,
       fixes,
       vehicles,
       hard_brakes,
       window_end
FROM current_segment_conditions
WHERE $__timeFilter(window_start) AND median_speed_kmh IS NOT NULL AND speed_limit_kmh > 0
ORDER BY share_of_limit, segment_id
LIMIT 50
""".strip(),
    "table",
    (
        "segment_id",
        "name",
        "road_class",
        "median_speed_kmh",
        "speed_limit_kmh",
        "share_of_limit",
        "fixes",
        "vehicles",
        "hard_brakes",
        "window_end",
    ),
)

CITY_QUERIES = {
    "road_conditions": ROAD_CONDITIONS,
    "open_incident_count": OPEN_INCIDENT_COUNT,
    "open_incidents": OPEN_INCIDENTS,
    "segment_speeds": SEGMENT_SPEEDS,
    "slowest_segment_speeds": SLOWEST_SEGMENT_SPEEDS,
    "slowest_segments": SLOWEST_SEGMENTS,
}
