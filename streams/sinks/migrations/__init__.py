"""Alembic migrations of fleetscope's PostgreSQL schema: the tables of ``streams/sinks/tables.py``,
the dashboard views and the two group roles.

Revisions are numbered (``0001``, ``0002``, ...) and never edited once released: a schema change is a
new revision together with the matching change to ``tables.py`` (``tests/test_schema.py`` compares
them). ``infra.postgres.apply_schema`` (``fleetscope schema``, and every stack start) upgrades to head as
the owner account. In a checkout the ``alembic`` command works too, configured in pyproject.toml
against the same account: ``alembic revision --rev-id 0004 -m "..."``, ``alembic upgrade head --sql``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

SCRIPT_LOCATION = Path(__file__).resolve().parent
WRITER_ROLE = "fleetscope_writer"
READER_ROLE = "fleetscope_reader"
VIEWS = ("current_segment_conditions", "open_incidents", "current_road_conditions")
# Tables the reader role (dashboards) may not read: camera images of the public (revision 0006).
NOT_FOR_DASHBOARDS = ("alert_evidence",)


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration, made in code; migrations run on ``connection`` when given."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """What autogenerate compares: the objects of ``tables.py``, not the views the migrations add."""
    return not (type_ == "table" and name in VIEWS)
