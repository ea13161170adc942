"""Alembic environment of fleetscope's schema (see ``__init__.py`` in this folder).

Online, migrations run on the connection in ``config.attributes["connection"]`` when there is one
(``infra.postgres.apply_schema`` hands over its own, inside one transaction), else on the owner account
of fleetscope's settings. Offline (``alembic upgrade head --sql``) they print the SQL for a DBA to review.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from core.settings import get_settings
from streams.sinks.migrations import include_object
from streams.sinks.tables import metadata

config = context.config


def _url() -> str:
    return get_settings().postgres.admin_url("psycopg")


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=_url(),
        target_metadata=metadata,
        include_object=include_object,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)
else:
    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
