"""Roles: fleetscope_writer for the pipeline, fleetscope_reader for dashboards.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Both are group roles (NOLOGIN): grant them to the login users of the pipeline and of the dashboards
(``GRANT fleetscope_writer TO <user>``). Roles belong to the whole server, not to one database, so
they are created only when missing (another fleetscope database on the server may have made them);
creating them needs CREATEROLE, which a DBA can spare the migrating account by creating them first.

- fleetscope_writer: SELECT, INSERT, UPDATE, DELETE on the pipeline's tables. No TRUNCATE and no DDL:
  it owns nothing, and on PostgreSQL >= 15 nobody but the database owner may create in schema public
  (on older servers, ``REVOKE CREATE ON SCHEMA public FROM PUBLIC``). No sequences exist to grant.
- fleetscope_reader: SELECT on the tables and the views.
- Both: SELECT on alembic_version, so any account can tell the schema's revision (``fleetscope schema
  --show``, or a pipeline account running ``fleetscope schema`` on a database already at head).

Grants are explicit, in the revision that creates the object: this one grants on what 0001 and 0002
made; a later revision that adds a table, view or sequence grants on it itself (``tests/test_schema.py``
checks every relation). Not ALTER DEFAULT PRIVILEGES: those apply only to objects created by the role
that set them, so a migration run by another owner account would silently make tables the pipeline
cannot write.

Downgrade revokes the grants and keeps the roles, which other databases on the server may use.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WRITER, READER = "fleetscope_writer", "fleetscope_reader"
TABLES = "frame_observations, alerts, road_conditions, segment_stats"
VIEWS = "current_segment_conditions, open_incidents"

# Another database's migration may create the role between the check and CREATE ROLE.
CREATE_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
        CREATE ROLE {role} NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$
"""


def upgrade() -> None:
    for role in (WRITER, READER):
        op.execute(CREATE_ROLE.format(role=role))
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLES} TO {WRITER}")
    op.execute(f"GRANT SELECT ON {TABLES}, {VIEWS} TO {READER}")
    op.execute(f"GRANT SELECT ON alembic_version TO {WRITER}, {READER}")


def downgrade() -> None:
    op.execute(f"REVOKE SELECT ON alembic_version FROM {WRITER}, {READER}")
    op.execute(f"REVOKE SELECT ON {TABLES}, {VIEWS} FROM {READER}")
    op.execute(f"REVOKE SELECT, INSERT, UPDATE, DELETE ON {TABLES} FROM {WRITER}")
