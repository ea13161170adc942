"""The frames an alert stood on, kept as evidence for operators (``fleetscope alerts show``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

- ``alert_evidence``: per vehicle incident (an id in ``alerts.vehicle_incidents``) and frame, the
  frame's JPEG as the vehicle sent it and what to draw on it (objects, relations, the anomaly and
  the rule's score). The worker deletes rows older than ``evidence.keep_days``.

Grants: the writer may write it. The reader (dashboards) may not read it: the JPEGs are camera
images of the public, for the operators who act on an alert, not for a city dashboard.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WRITER = "fleetscope_writer"
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_evidence",
        sa.Column(
            "incident_id", sa.Text(), nullable=False, comment="a vehicle incident: one of alerts.vehicle_incidents"
        ),
        sa.Column("frame_id", sa.Text(), nullable=False),
        sa.Column("alert_type", sa.Text(), nullable=False),
        sa.Column("vehicle_id", sa.Text(), nullable=False),
        sa.Column("captured_at", TIMESTAMP, nullable=False),
        sa.Column("jpeg", sa.LargeBinary(), nullable=False, comment="the frame as the vehicle sent it"),
        sa.Column(
            "drawing",
            postgresql.JSONB(),
            nullable=False,
            comment="objects, relations, anomaly and rule score to draw on it",
        ),
        sa.Column("stored_at", TIMESTAMP, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "frame_id"),
    )
    op.create_index("alert_evidence_stored_at", "alert_evidence", ["stored_at"])
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON alert_evidence TO {WRITER}")


def downgrade() -> None:
    op.drop_index("alert_evidence_stored_at", table_name="alert_evidence")
    op.drop_table("alert_evidence")
