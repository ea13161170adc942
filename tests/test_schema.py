"""The PostgreSQL schema: migrations match tables.py, old databases are adopted, and the two roles hold.

Tests that migrate use a blank database of their own on the session stack's server; tests of the
roles use the stack's own database, which the stack migrated and gave its login roles.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import psycopg.errors
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core.errors import ConfigError, ServiceError
from core.settings import Settings, load_settings
from infra.postgres import PRE_MIGRATION_COLUMNS, apply_schema
from streams.sinks.migrations import (
    NOT_FOR_DASHBOARDS,
    READER_ROLE,
    VIEWS,
    WRITER_ROLE,
    alembic_config,
    head_revision,
    include_object,
)
from streams.sinks.tables import alerts, metadata, segment_stats

# The indexes metadata.create_all made before migrations (revision 0001); 0002 added the others.
PRE_MIGRATION_INDEXES = {
    "frame_observations_cell_time",
    "alerts_window_start",
    "road_conditions_window_start",
    "segment_stats_window_start",
}
T0 = datetime(2026, 11, 3, 7, 30, tzinfo=timezone.utc)


def dsn(settings: Settings, user: str, database: str = "fleetscope") -> str:
    return f"postgresql://{user}@127.0.0.1:{settings.postgres.embedded_port}/{database}"


def engine_as(settings: Settings, user: str, database: str = "fleetscope") -> sa.Engine:
    return sa.create_engine(dsn(settings, user, database).replace("postgresql://", "postgresql+psycopg://"))


def assert_refused(engine: sa.Engine, statement: str) -> None:
    """``statement`` fails for lack of privilege when run through ``engine`` (disposed afterwards)."""
    try:
        with engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError) as err:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()
    assert isinstance(err.value.orig, psycopg.errors.InsufficientPrivilege)


@pytest.fixture
def blank_database(settings: Settings, tmp_path) -> Iterator[Callable[..., Settings]]:
    """A factory of empty databases on the stack's server: settings whose DSN names one (as ``postgres``)."""
    admin = sa.create_engine(settings.postgres.admin_url("psycopg"), isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make(user: str = "postgres", admin_user: str | None = None) -> Settings:
        db = f"fleetscope_schema_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
        made.append(db)
        postgres = {"dsn": dsn(settings, user, db)}
        if admin_user:
            postgres["admin_dsn"] = dsn(settings, admin_user, db)
        return load_settings(postgres=postgres, stack={"run_dir": tmp_path})

    yield make
    with admin.connect() as conn:
        for db in made:
            conn.execute(sa.text(f'DROP DATABASE "{db}" WITH (FORCE)'))
    admin.dispose()


def differences(settings: Settings) -> list:
    """What differs between the database and tables.py (alembic's autogenerate comparison)."""
    engine = sa.create_engine(settings.postgres.admin_url("psycopg"))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    return diff


def relations(settings: Settings) -> tuple[set[str], set[str]]:
    engine = sa.create_engine(settings.postgres.admin_url("psycopg"))
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        found = set(inspector.get_table_names()), set(inspector.get_view_names())
    engine.dispose()
    return found


def create_all_before_migrations(settings: Settings) -> None:
    """The tables as the code before migrations made them: ``create_all`` of revision 0001's columns and indexes."""
    old = sa.MetaData()
    for name, columns in PRE_MIGRATION_COLUMNS.items():
        table = metadata.tables[name]
        copy = sa.Table(name, old, *[c._copy() for c in table.columns if c.name in columns])
        for index in table.indexes:
            if index.name in PRE_MIGRATION_INDEXES:
                sa.Index(index.name, *[copy.c[c.name] for c in index.columns])
    engine = sa.create_engine(settings.postgres.admin_url("psycopg"))
    old.create_all(engine)
    engine.dispose()


def segment_row(segment_id: str, window_start: datetime, **values: object) -> dict:
    return {
        "segment_id": segment_id,
        "window_start": window_start,
        "window_seconds": 60,
        "fixes": 10,
        "vehicles": 2,
        "trajectories": 2,
        "median_speed_kmh": 31.0,
        "hard_brakes": 0,
        "name": "Mannerheimintie",
        "road_class": "primary",
        "lanes": 2,
        "speed_limit_kmh": 40.0,
        "length_m": 120.5,
        **values,
    }


def alert_row(alert_id: str, window_end: datetime, **values: object) -> dict:
    return {
        "alert_id": alert_id,
        "type": "collision",
        "severity": "high",
        "vehicle_id": "test-schema",
        "cell_id": "c1",
        "segment_id": "s1",
        "window_start": window_end - timedelta(seconds=30),
        "window_end": window_end,
        "score": 0.9,
        "frame_ids": ["f1", "f2", "f3"],
        "evidence": {},
        "vehicles": ["test-schema"],
        "vehicle_incidents": [alert_id],
        "confidence": 0.9,
        **values,
    }


# --- migrations ---------------------------------------------------------------------------------


def test_migrating_an_empty_database_gives_exactly_the_tables_of_tables_py_and_the_views(blank_database):
    db = blank_database()

    before, after = apply_schema(db)

    assert (before, after) == (None, head_revision())
    assert differences(db) == []
    tables, views = relations(db)
    assert tables == set(metadata.tables) | {"alembic_version"}
    assert views == set(VIEWS)


def test_migrating_twice_changes_nothing_the_second_time(blank_database):
    db = blank_database()
    apply_schema(db)

    assert apply_schema(db) == (head_revision(), head_revision())


def test_downgrading_to_base_removes_everything_and_upgrading_again_restores_it(blank_database):
    db = blank_database()
    apply_schema(db)
    engine = sa.create_engine(db.postgres.admin_url("psycopg"))

    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert relations(db) == ({"alembic_version"}, set())

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    engine.dispose()
    assert differences(db) == []
    assert relations(db)[1] == set(VIEWS)


def test_revision_0001_creates_the_columns_a_database_from_before_migrations_is_checked_against(blank_database):
    db = blank_database()
    engine = sa.create_engine(db.postgres.admin_url("psycopg"))

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        inspector = sa.inspect(conn)
        columns = {t: tuple(c["name"] for c in inspector.get_columns(t)) for t in PRE_MIGRATION_COLUMNS}
        indexes = {i["name"] for t in PRE_MIGRATION_COLUMNS for i in inspector.get_indexes(t)}
    engine.dispose()

    assert columns == PRE_MIGRATION_COLUMNS
    assert indexes == PRE_MIGRATION_INDEXES


def test_a_database_made_by_create_all_before_migrations_is_stamped_at_0001_and_upgraded_keeping_its_rows(
    blank_database,
):
    db = blank_database()
    create_all_before_migrations(db)
    engine = sa.create_engine(db.postgres.admin_url("psycopg"))
    old_alert = {k: v for k, v in alert_row("old-alert", T0).items() if k in PRE_MIGRATION_COLUMNS["alerts"]}
    with engine.begin() as conn:
        conn.execute(sa.insert(segment_stats), [segment_row("old-segment", T0)])
        conn.execute(sa.insert(alerts).values(old_alert))

    before, after = apply_schema(db)

    assert (before, after) == ("0001", head_revision())
    assert differences(db) == []
    with engine.connect() as conn:
        kept = conn.execute(sa.select(segment_stats.c.segment_id)).scalars().all()
        alert = conn.execute(sa.select(alerts)).mappings().one()
    engine.dispose()
    assert kept == ["old-segment"]
    # Revision 0005: an alert from before is one vehicle's incident.
    assert (alert["vehicles"], alert["vehicle_incidents"], alert["confidence"]) == (["test-schema"], ["old-alert"], 0.9)


def test_tables_from_before_migrations_that_lack_a_column_are_refused_saying_what_to_do(blank_database):
    db = blank_database()
    create_all_before_migrations(db)
    engine = sa.create_engine(db.postgres.admin_url("psycopg"))
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE segment_stats DROP COLUMN lanes"))
    engine.dispose()

    with pytest.raises(ServiceError, match=r"lack segment_stats\.lanes.*not revision 0001's.*by hand"):
        apply_schema(db)
    assert "alembic_version" not in relations(db)[0]  # nothing was stamped


def test_migrations_run_as_the_admin_dsn_while_the_pipeline_uses_the_dsn(blank_database):
    db = blank_database(user="fleetscope_pipeline", admin_user="postgres")

    apply_schema(db)

    assert db.postgres.url("psycopg").startswith("postgresql+psycopg://fleetscope_pipeline@")
    engine = sa.create_engine(db.postgres.admin_url("psycopg"))
    with engine.connect() as conn:
        owners = set(conn.execute(sa.text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")).scalars())
    engine.dispose()
    assert owners == {"postgres"}


def test_an_account_that_may_not_create_tables_cannot_migrate_and_is_told_to_use_the_admin_dsn(blank_database):
    db = blank_database(user="fleetscope_pipeline")

    with pytest.raises(ServiceError, match="(?s)permission denied.*FLEETSCOPE_POSTGRES__ADMIN_DSN"):
        apply_schema(db)


def test_the_pipeline_account_may_run_the_schema_step_on_a_database_already_at_head(blank_database):
    db = blank_database()
    apply_schema(db)
    assert db.postgres.dsn is not None
    as_pipeline = load_settings(
        postgres={"dsn": db.postgres.dsn.get_secret_value().replace("//postgres@", "//fleetscope_pipeline@")}
    )

    assert apply_schema(as_pipeline) == (head_revision(), head_revision())


def test_an_admin_dsn_that_is_not_postgresql_is_a_config_error_naming_it():
    settings = load_settings(postgres={"dsn": "postgresql://u@h/db", "admin_dsn": "mysql://root@h/db"})

    with pytest.raises(ConfigError, match="FLEETSCOPE_POSTGRES__ADMIN_DSN must start with postgresql://"):
        settings.postgres.admin_url()


def test_an_admin_dsn_without_a_dsn_is_a_config_error():
    with pytest.raises(ConfigError, match="admin_dsn is set but dsn is not"):
        load_settings(postgres={"admin_dsn": "postgresql://owner@h/db"})


# --- views ---------------------------------------------------------------------------------------


def test_current_segment_conditions_shows_each_segments_newest_window(blank_database):
    db = blank_database()
    apply_schema(db)
    engine = sa.create_engine(db.postgres.admin_url("psycopg"))
    with engine.begin() as conn:
        conn.execute(
            sa.insert(segment_stats),
            [
                segment_row("a", T0 - timedelta(seconds=60), vehicles=5),
                segment_row("a", T0 - timedelta(seconds=30), vehicles=3, hard_brakes=1),
                segment_row("b", T0 - timedelta(days=2), vehicles=1),
            ],
        )

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT segment_id, vehicles, hard_brakes, window_end - window_start FROM current_segment_conditions"
            )
        ).all()
    engine.dispose()

    assert sorted(rows) == [("a", 3, 1, timedelta(seconds=60)), ("b", 1, 0, timedelta(seconds=60))]


def test_open_incidents_shows_alerts_of_the_last_15_minutes_newest_first_with_their_frame_count(blank_database):
    db = blank_database()
    apply_schema(db)
    now = datetime.now(timezone.utc)
    long_ago = now - timedelta(hours=2)
    engine = sa.create_engine(db.postgres.admin_url("psycopg"))
    with engine.begin() as conn:
        conn.execute(
            sa.insert(alerts),
            [
                alert_row("ended-now", now, updated_at=long_ago),
                alert_row("ended-5-min-ago", now - timedelta(minutes=5), updated_at=long_ago),
                alert_row("ended-20-min-ago", now - timedelta(minutes=20), updated_at=long_ago),
                alert_row("old-but-just-updated", long_ago, updated_at=now),
                alert_row("old", long_ago, updated_at=long_ago),
            ],
        )

    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT alert_id, frames FROM open_incidents")).all()
    engine.dispose()

    assert rows == [("ended-now", 3), ("ended-5-min-ago", 3), ("old-but-just-updated", 3)]


# --- roles (on the stack's own database) ------------------------------------------------------------


def test_every_table_and_view_is_granted_to_the_writer_and_the_reader(settings):
    """A later revision that adds a relation and forgets its grants fails here."""
    engine = sa.create_engine(settings.postgres.admin_url("psycopg"))
    held = """ARRAY(SELECT p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p
                     WHERE has_table_privilege({role}, c.oid, p))"""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"""
                SELECT c.relname, c.relkind, {held.format(role=":reader")}, {held.format(role=":writer")}
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm')
                  AND c.relname <> 'alembic_version'
                """
            ),
            {"reader": READER_ROLE, "writer": WRITER_ROLE},
        ).all()
    engine.dispose()

    assert {r.relname for r in rows} == set(metadata.tables) | set(VIEWS)
    for name, kind, reader, writer in rows:
        assert reader == ([] if name in NOT_FOR_DASHBOARDS else ["SELECT"]), name
        assert writer == (["SELECT", "INSERT", "UPDATE", "DELETE"] if kind in ("r", "p") else []), name


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO alerts (alert_id, type, severity, vehicle_id, window_start, window_end, score, frame_ids,"
        " evidence) VALUES ('x', 't', 's', 'v', now(), now(), 1, '{}', '{}')",
        "UPDATE alerts SET score = 0 WHERE alert_id = 'x'",
        "DELETE FROM alerts WHERE alert_id = 'x'",
    ],
    ids=["insert", "update", "delete"],
)
def test_the_dashboard_login_cannot_write(settings, statement):
    assert_refused(engine_as(settings, "fleetscope_dashboard"), statement)


def test_the_dashboard_login_cannot_read_the_camera_images_kept_as_evidence(settings):
    assert_refused(engine_as(settings, "fleetscope_dashboard"), "SELECT jpeg FROM alert_evidence LIMIT 1")


def test_the_dashboard_login_reads_tables_and_the_views(settings):
    engine = engine_as(settings, "fleetscope_dashboard")
    with engine.connect() as conn:
        for relation in ("alerts", "segment_stats", *VIEWS):
            conn.execute(sa.text(f"SELECT * FROM {relation} LIMIT 1")).all()
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    assert revision == head_revision()


def test_the_embedded_pipeline_connects_as_its_login_which_writes_rows(settings):
    engine = sa.create_engine(settings.postgres.url("psycopg"))
    segment = f"test-{uuid.uuid4().hex[:8]}"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar_one() == "fleetscope_pipeline"
        conn.execute(sa.insert(segment_stats), [segment_row(segment, T0)])
        conn.execute(sa.update(segment_stats).where(segment_stats.c.segment_id == segment).values(hard_brakes=4))
        conn.execute(sa.delete(segment_stats).where(segment_stats.c.segment_id == segment))
        conn.commit()
    engine.dispose()


@pytest.mark.parametrize(
    "statement", ["CREATE TABLE pipeline_scratch (x int)", "DROP TABLE alerts"], ids=["create", "drop"]
)
def test_the_pipeline_login_cannot_create_or_drop_tables(settings, statement):
    assert_refused(sa.create_engine(settings.postgres.url("psycopg")), statement)
