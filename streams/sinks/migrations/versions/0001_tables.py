"""The four tables as ``metadata.create_all`` made them before migrations.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

A database made by ``create_all`` (no ``alembic_version`` table) has exactly this schema;
``infra.postgres.apply_schema`` stamps it at 0001 and upgrades it from there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "frame_observations",
        sa.Column("frame_id", sa.Text(), nullable=False),
        sa.Column("vehicle_id", sa.Text(), nullable=False),
        sa.Column("captured_at", TIMESTAMP, nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("cell_id", sa.Text(), nullable=True, comment="grid cell of the attached GPS fix; NULL without a fix"),
        sa.Column(
            "segment_id",
            sa.Text(),
            nullable=True,
            comment="map-matched road segment; NULL when off the network or without a fix",
        ),
        sa.Column("speed_mps", sa.Float(), nullable=True),
        sa.Column("anomaly_score", sa.Float(), nullable=False),
        sa.Column("anomaly_type", sa.Text(), nullable=False),
        sa.Column("aspects", postgresql.JSONB(), nullable=False, comment="aspect -> most probable label"),
        sa.Column(
            "congestion_level", sa.Float(), nullable=False, comment="expected congestion class / max class, 0..1"
        ),
        sa.Column("inserted_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("frame_id"),
    )
    op.create_index("frame_observations_cell_time", "frame_observations", ["cell_id", "captured_at"])

    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.Text(), nullable=False, comment="stable: vehicle + type + alert window"),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("vehicle_id", sa.Text(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("cell_id", sa.Text(), nullable=True),
        sa.Column("segment_id", sa.Text(), nullable=True, comment="map-matched road segment of the first frame"),
        sa.Column("window_start", TIMESTAMP, nullable=False),
        sa.Column("window_end", TIMESTAMP, nullable=False),
        sa.Column("score", sa.Float(), nullable=False, comment="highest anomaly score seen in the window"),
        sa.Column("frame_ids", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("evidence", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    op.create_index("alerts_window_start", "alerts", ["window_start"])

    op.create_table(
        "road_conditions",
        sa.Column("cell_id", sa.Text(), nullable=False),
        sa.Column("window_start", TIMESTAMP, nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("vehicles", sa.Integer(), nullable=False),
        sa.Column("mean_speed_kmh", sa.Float(), nullable=True),
        sa.Column("anomaly_frames", sa.Integer(), nullable=False),
        sa.Column("dominant_surface", sa.Text(), nullable=True),
        sa.Column("dominant_weather", sa.Text(), nullable=True),
        sa.Column("mean_congestion", sa.Float(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("cell_id", "window_start", "window_seconds"),
    )
    op.create_index("road_conditions_window_start", "road_conditions", ["window_start"])

    op.create_table(
        "segment_stats",
        sa.Column(
            "segment_id",
            sa.Text(),
            nullable=False,
            comment="<from OSM node>-<to OSM node>[-k]: one direction of a road",
        ),
        sa.Column("window_start", TIMESTAMP, nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("fixes", sa.Integer(), nullable=False, comment="map-matched GPS fixes on the segment in the window"),
        sa.Column("vehicles", sa.Integer(), nullable=False),
        sa.Column("trajectories", sa.Integer(), nullable=False, comment="passes through the segment"),
        sa.Column("median_speed_kmh", sa.Float(), nullable=True, comment="median GPS speed of the fixes"),
        sa.Column("hard_brakes", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("road_class", sa.Text(), nullable=False),
        sa.Column("lanes", sa.Integer(), nullable=False, comment="in this direction"),
        sa.Column("speed_limit_kmh", sa.Float(), nullable=False),
        sa.Column("length_m", sa.Float(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("segment_id", "window_start", "window_seconds"),
    )
    op.create_index("segment_stats_window_start", "segment_stats", ["window_start"])


def downgrade() -> None:
    # Dropping a table drops its indexes.
    for table in ("segment_stats", "road_conditions", "alerts", "frame_observations"):
        op.drop_table(table)
