"""Dashboard indexes (by segment, by area = cell_id, by alert type, recent alerts) and two views.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Views, not tables, so they are not in ``streams/sinks/tables.py``; their SQL lives here, and a later
change to one is a new revision that replaces it (``CREATE OR REPLACE VIEW``, or drop and create).

- ``current_segment_conditions``: per road segment, its newest ``segment_stats`` window.
- ``open_incidents``: alerts whose window ended, or that were updated, in the last 15 minutes.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = [
    ("frame_observations_segment_time", "frame_observations", ["segment_id", "captured_at"]),
    ("alerts_segment_time", "alerts", ["segment_id", "window_start"]),
    ("alerts_cell_time", "alerts", ["cell_id", "window_start"]),
    ("alerts_type_time", "alerts", ["type", "window_start"]),
    # open_incidents filters on either column: PostgreSQL combines the two indexes (BitmapOr).
    ("alerts_window_end", "alerts", ["window_end"]),
    ("alerts_updated_at", "alerts", ["updated_at"]),
]

CURRENT_SEGMENT_CONDITIONS = """
CREATE VIEW current_segment_conditions AS
SELECT DISTINCT ON (segment_id)
       segment_id,
       window_start,
       window_start + make_interval(secs => window_seconds) AS window_end,
       window_seconds,
       fixes,
       vehicles,
       trajectories,
       median_speed_kmh,
       hard_brakes,
       name,
       road_class,
       lanes,
       speed_limit_kmh,
       length_m,
       updated_at
FROM segment_stats
ORDER BY segment_id, window_start DESC, window_seconds DESC
"""

OPEN_INCIDENTS = """
CREATE VIEW open_incidents AS
SELECT alert_id,
       type,
       severity,
       score,
       vehicle_id,
       segment_id,
       cell_id,
       lat,
       lon,
       window_start,
       window_end,
       cardinality(frame_ids) AS frames,
       created_at,
       updated_at
FROM alerts
WHERE window_end >= now() - interval '15 minutes'
   OR updated_at >= now() - interval '15 minutes'
ORDER BY window_end DESC, alert_id
"""

COMMENTS = [
    "COMMENT ON VIEW current_segment_conditions IS"
    " 'Per road segment, its newest segment_stats window (however old: filter on window_start for recency):"
    " traffic in the window and the segment''s static attributes.'",
    "COMMENT ON COLUMN current_segment_conditions.window_end IS 'window_start + window_seconds'",
    "COMMENT ON VIEW open_incidents IS"
    " 'Alerts whose window ended or that were updated within the last 15 minutes of now(), newest window first.'",
    "COMMENT ON COLUMN open_incidents.frames IS 'frames in the alert''s evidence (cardinality of alerts.frame_ids)'",
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    op.execute(CURRENT_SEGMENT_CONDITIONS)
    op.execute(OPEN_INCIDENTS)
    for comment in COMMENTS:
        op.execute(comment)


def downgrade() -> None:
    op.execute("DROP VIEW open_incidents")
    op.execute("DROP VIEW current_segment_conditions")
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
