"""PostgreSQL tables written by the pipeline, defined once (SQLAlchemy Core).

``frame_observations`` holds one row per processed frame, keyed by ``frame_id``: it is the
deduplicated base from which ``road_conditions`` (per grid cell) and ``segment_road_conditions`` (per
road segment) are recomputed as absolute values, so a replay or a restart from committed offsets can
never double count.

The database gets these tables through the migrations in ``streams/sinks/migrations`` (``fleetscope
schema``); a change here needs a new revision there, and ``tests/test_schema.py`` fails until the two
agree. The migrations also create the dashboard views and the roles, which are not part of this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

frame_observations = Table(
    "frame_observations",
    metadata,
    Column("frame_id", Text, primary_key=True),
    Column("vehicle_id", Text, nullable=False),
    Column("captured_at", DateTime(timezone=True), nullable=False),
    Column("lat", Float),
    Column("lon", Float),
    Column("cell_id", Text, comment="grid cell of the attached GPS fix; NULL without a fix"),
    Column("segment_id", Text, comment="map-matched road segment; NULL when off the network or without a fix"),
    Column("speed_mps", Float),
    Column("anomaly_score", Float, nullable=False),
    Column("anomaly_type", Text, nullable=False),
    Column("aspects", JSONB, nullable=False, comment="aspect -> most probable label"),
    Column("congestion_level", Float, nullable=False, comment="expected congestion class / max class, 0..1"),
    Column("inserted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("frame_observations_cell_time", frame_observations.c.cell_id, frame_observations.c.captured_at)
Index("frame_observations_segment_time", frame_observations.c.segment_id, frame_observations.c.captured_at)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", Text, primary_key=True, comment="stable: vehicle + type + alert window"),
    Column("type", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("vehicle_id", Text, nullable=False),
    Column("lat", Float),
    Column("lon", Float),
    Column("cell_id", Text),
    Column("segment_id", Text, comment="map-matched road segment of the first frame"),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("score", Float, nullable=False, comment="highest anomaly score seen in the window"),
    Column("frame_ids", ARRAY(Text), nullable=False),
    Column("evidence", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("vehicles", ARRAY(Text), nullable=False, comment="every vehicle that reported the incident, sorted"),
    Column(
        "vehicle_incidents",
        ARRAY(Text),
        nullable=False,
        comment="the per-vehicle incident ids merged into this alert (one of them is alert_id)",
    ),
    Column("confidence", Float, nullable=False, comment="1 - product over vehicles of (1 - their best score)"),
)
Index("alerts_window_start", alerts.c.window_start)
Index("alerts_vehicle_incidents", alerts.c.vehicle_incidents, postgresql_using="gin")
Index("alerts_segment_time", alerts.c.segment_id, alerts.c.window_start)
Index("alerts_cell_time", alerts.c.cell_id, alerts.c.window_start)
Index("alerts_type_time", alerts.c.type, alerts.c.window_start)
# open_incidents: alerts whose window ended or that were updated in the last 15 minutes (a BitmapOr of the two).
Index("alerts_window_end", alerts.c.window_end)
Index("alerts_updated_at", alerts.c.updated_at)

alert_evidence = Table(
    "alert_evidence",
    metadata,
    Column("incident_id", Text, nullable=False, comment="a vehicle incident: one of alerts.vehicle_incidents"),
    Column("frame_id", Text, nullable=False),
    Column("alert_type", Text, nullable=False),
    Column("vehicle_id", Text, nullable=False),
    Column("captured_at", DateTime(timezone=True), nullable=False),
    Column("jpeg", LargeBinary, nullable=False, comment="the frame as the vehicle sent it"),
    Column("drawing", JSONB, nullable=False, comment="objects, relations, anomaly and rule score to draw on it"),
    Column("stored_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("incident_id", "frame_id"),
)
Index("alert_evidence_stored_at", alert_evidence.c.stored_at)

road_conditions = Table(
    "road_conditions",
    metadata,
    Column("cell_id", Text, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_seconds", Integer, nullable=False),
    Column("frames", Integer, nullable=False),
    Column("vehicles", Integer, nullable=False),
    Column("mean_speed_kmh", Float),
    Column("anomaly_frames", Integer, nullable=False),
    Column("dominant_surface", Text),
    Column("dominant_weather", Text),
    Column("mean_congestion", Float),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("cell_id", "window_start", "window_seconds"),
)
Index("road_conditions_window_start", road_conditions.c.window_start)

segment_stats = Table(
    "segment_stats",
    metadata,
    Column("segment_id", Text, nullable=False, comment="<from OSM node>-<to OSM node>[-k]: one direction of a road"),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_seconds", Integer, nullable=False),
    Column("fixes", Integer, nullable=False, comment="map-matched GPS fixes on the segment in the window"),
    Column("vehicles", Integer, nullable=False),
    Column("trajectories", Integer, nullable=False, comment="passes through the segment"),
    Column("median_speed_kmh", Float, comment="median GPS speed of the fixes"),
    Column("hard_brakes", Integer, nullable=False),
    Column("name", Text),
    Column("road_class", Text, nullable=False),
    Column("lanes", Integer, nullable=False, comment="in this direction"),
    Column("speed_limit_kmh", Float, nullable=False),
    Column("length_m", Float, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("segment_id", "window_start", "window_seconds"),
)
Index("segment_stats_window_start", segment_stats.c.window_start)

segment_road_conditions = Table(
    "segment_road_conditions",
    metadata,
    Column("segment_id", Text, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_seconds", Integer, nullable=False, comment="one row per configured window length (5 min, 1 h)"),
    Column("frames", Integer, nullable=False),
    Column("vehicles", Integer, nullable=False),
    Column("anomaly_frames", Integer, nullable=False, comment="frames whose anomaly score reached the threshold"),
    Column("aspects", JSONB, nullable=False, comment="aspect -> label -> share of the window's frames"),
    Column("dominant_surface", Text, nullable=False),
    Column("dominant_weather", Text, nullable=False),
    Column("dominant_congestion", Text, nullable=False),
    Column("congestion_level", Float, nullable=False, comment="mean expected congestion class / max class, 0..1"),
    Column(
        "median_speed_kmh",
        Float,
        comment="fix-weighted mean of the median speeds of the segment's traffic windows (segment_stats) in it",
    ),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("segment_id", "window_start", "window_seconds"),
)
Index(
    "segment_road_conditions_window",
    segment_road_conditions.c.window_seconds,
    segment_road_conditions.c.window_start,
)
