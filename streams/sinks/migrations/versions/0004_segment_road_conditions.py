"""Road conditions per road segment at several window lengths, and the view of the current ones.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

- ``segment_road_conditions``: per segment, window start and window length (the worker's
  ``condition_windows_s``, 5 minutes and 1 hour by default): frames, vehicles, anomaly frames, the
  share of each label of every ST-CLIP aspect, dominant surface, weather and congestion, the congestion
  level and the median speed from the segment's traffic windows.
- ``current_road_conditions``: per segment and window length, the newest window.

Grants follow revision 0003: the writer may write the table, the reader may read both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WRITER, READER = "fleetscope_writer", "fleetscope_reader"
TIMESTAMP = sa.DateTime(timezone=True)

CURRENT_ROAD_CONDITIONS = """
CREATE VIEW current_road_conditions AS
SELECT DISTINCT ON (segment_id, window_seconds)
       segment_id,
       window_seconds,
       window_start,
       window_start + make_interval(secs => window_seconds) AS window_end,
       frames,
       vehicles,
       anomaly_frames,
       dominant_surface,
       dominant_weather,
       dominant_congestion,
       congestion_level,
       median_speed_kmh,
       aspects,
       updated_at
FROM segment_road_conditions
ORDER BY segment_id, window_seconds, window_start DESC
"""

COMMENTS = [
    "COMMENT ON VIEW current_road_conditions IS"
    " 'Per road segment and window length, its newest segment_road_conditions window (however old:"
    " filter on window_start for recency).'",
    "COMMENT ON COLUMN current_road_conditions.window_end IS 'window_start + window_seconds'",
]


def upgrade() -> None:
    op.create_table(
        "segment_road_conditions",
        sa.Column("segment_id", sa.Text(), nullable=False),
        sa.Column("window_start", TIMESTAMP, nullable=False),
        sa.Column(
            "window_seconds",
            sa.Integer(),
            nullable=False,
            comment="one row per configured window length (5 min, 1 h)",
        ),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("vehicles", sa.Integer(), nullable=False),
        sa.Column(
            "anomaly_frames",
            sa.Integer(),
            nullable=False,
            comment="frames whose anomaly score reached the threshold",
        ),
        sa.Column(
            "aspects",
            postgresql.JSONB(),
            nullable=False,
            comment="aspect -> label -> share of the window's frames",
        ),
        sa.Column("dominant_surface", sa.Text(), nullable=False),
        sa.Column("dominant_weather", sa.Text(), nullable=False),
        sa.Column("dominant_congestion", sa.Text(), nullable=False),
        sa.Column(
            "congestion_level",
            sa.Float(),
            nullable=False,
            comment="mean expected congestion class / max class, 0..1",
        ),
        sa.Column(
            "median_speed_kmh",
            sa.Float(),
            comment="fix-weighted mean of the median speeds of the segment's traffic windows (segment_stats) in it",
        ),
        sa.Column("updated_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("segment_id", "window_start", "window_seconds"),
    )
    op.create_index("segment_road_conditions_window", "segment_road_conditions", ["window_seconds", "window_start"])
    op.execute(CURRENT_ROAD_CONDITIONS)
    for comment in COMMENTS:
        op.execute(comment)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON segment_road_conditions TO {WRITER}")
    op.execute(f"GRANT SELECT ON segment_road_conditions, current_road_conditions TO {READER}")


def downgrade() -> None:
    op.execute("DROP VIEW current_road_conditions")
    op.drop_index("segment_road_conditions_window", table_name="segment_road_conditions")
    op.drop_table("segment_road_conditions")
