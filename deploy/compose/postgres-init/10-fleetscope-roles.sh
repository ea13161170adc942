#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume (docker-entrypoint-initdb.d).
# The group roles are those migration 0003 grants on (it creates them only when missing); creating
# them here, with the two logins, lets `fleetscope schema` run as the database owner alone.
# Passwords arrive as psql variables (:'name' quotes them), never spliced into the SQL text.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pipeline_password="$PIPELINE_DB_PASSWORD" -v dashboard_password="$DASHBOARD_DB_PASSWORD" <<'SQL'
CREATE ROLE fleetscope_writer NOLOGIN;
CREATE ROLE fleetscope_reader NOLOGIN;
CREATE ROLE fleetscope_pipeline LOGIN PASSWORD :'pipeline_password' IN ROLE fleetscope_writer;
CREATE ROLE fleetscope_dashboard LOGIN PASSWORD :'dashboard_password' IN ROLE fleetscope_reader;
SQL
