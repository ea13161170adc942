"""One alert per incident on a road segment, corroborated by every vehicle that reports it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

- ``alerts.vehicles``: the vehicles that reported the incident; ``alerts.vehicle_incidents``: their
  per-vehicle incident ids merged into it (a GIN index finds an alert by any of them);
  ``alerts.confidence``: 1 - the product over vehicles of (1 - their best score). Existing alerts
  are one vehicle's incident each: their vehicle, their own id and their score.
- ``open_incidents`` gains ``vehicle_count`` and ``confidence`` (as its last columns, so that
  ``CREATE OR REPLACE`` keeps the view and its grants).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

READER = "fleetscope_reader"

OPEN_INCIDENTS_SELECT = """
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
       updated_at{extra}
FROM alerts
WHERE window_end >= now() - interval '15 minutes'
   OR updated_at >= now() - interval '15 minutes'
ORDER BY window_end DESC, alert_id
"""
NEW_COLUMNS = """,
       cardinality(vehicles) AS vehicle_count,
       confidence"""


def upgrade() -> None:
    text_array = postgresql.ARRAY(sa.Text())
    op.add_column(
        "alerts",
        sa.Column("vehicles", text_array, nullable=True, comment="every vehicle that reported the incident, sorted"),
    )
    op.add_column(
        "alerts",
        sa.Column(
            "vehicle_incidents",
            text_array,
            nullable=True,
            comment="the per-vehicle incident ids merged into this alert (one of them is alert_id)",
        ),
    )
    op.add_column(
        "alerts",
        sa.Column(
            "confidence",
            sa.Float(),
            nullable=True,
            comment="1 - product over vehicles of (1 - their best score)",
        ),
    )
    op.execute(
        "UPDATE alerts SET vehicles = ARRAY[vehicle_id], vehicle_incidents = ARRAY[alert_id], confidence = score"
    )
    for column in ("vehicles", "vehicle_incidents", "confidence"):
        op.alter_column("alerts", column, nullable=False)
    op.create_index("alerts_vehicle_incidents", "alerts", ["vehicle_incidents"], postgresql_using="gin")
    op.execute("CREATE OR REPLACE VIEW open_incidents AS" + OPEN_INCIDENTS_SELECT.format(extra=NEW_COLUMNS))
    op.execute("COMMENT ON COLUMN open_incidents.vehicle_count IS 'vehicles that reported the incident'")


def downgrade() -> None:
    # A view cannot lose columns in place: drop it, make 0002's again and restore 0003's grant.
    op.execute("DROP VIEW open_incidents")
    op.execute("CREATE VIEW open_incidents AS" + OPEN_INCIDENTS_SELECT.format(extra=""))
    op.execute(
        "COMMENT ON VIEW open_incidents IS"
        " 'Alerts whose window ended or that were updated within the last 15 minutes of now(), newest window first.'"
    )
    op.execute(
        "COMMENT ON COLUMN open_incidents.frames IS 'frames in the alert''s evidence (cardinality of alerts.frame_ids)'"
    )
    op.execute(f"GRANT SELECT ON open_incidents TO {READER}")
    op.drop_index("alerts_vehicle_incidents", table_name="alerts")
    for column in ("confidence", "vehicle_incidents", "vehicles"):
        op.drop_column("alerts", column)
