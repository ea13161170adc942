"""Alerts in PostgreSQL: one row per incident, merged across vehicles on the same road segment.

The worker that owns a vehicle raises that vehicle's incidents (``fusion.incidents``); only the
database sees every worker's. A vehicle incident is stored into

1. the alert that already holds it (its id is in ``vehicle_incidents``), else
2. an alert of the same type on the same segment whose window is within ``cooldown`` of its own
   (another vehicle saw the same incident: corroboration), else
3. a new alert with the vehicle incident's id.

How two incidents merge is fusion's rule (``fusion.merging``); this module finds the row to merge
into and writes the result. A transaction-level advisory lock per alert type keeps two workers from
creating the same segment incident twice; alerts are rare, so it costs little.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from fusion.merging import alert_row, merged_row
from records.messages import Alert, Location
from streams.sinks.tables import alerts

# First key of the advisory lock that serialises storing alerts of one type ("flal").
ALERT_LOCK = 0x666C_616C


async def store_alert(conn: AsyncConnection, alert: Alert, cooldown_s: float) -> Alert:
    """Store one vehicle incident; return the incident as stored (what ``fleet.alerts`` should carry)."""
    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ALERT_LOCK, sa.func.hashtext(alert.type))))
    current = await _holding(conn, alert) or await _same_incident_on_segment(conn, alert, cooldown_s)
    row = alert_row(alert) if current is None else merged_row(current, alert)
    stmt = insert(alerts).values(row)
    keys = {"alert_id", "created_at"}
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[alerts.c.alert_id],
            set_={c: stmt.excluded[c] for c in row if c not in keys} | {"updated_at": sa.func.now()},
        )
    )
    return alert.model_copy(
        update={
            "alert_id": row["alert_id"],
            "severity": row["severity"],
            "vehicle_id": row["vehicle_id"],
            "vehicles": row["vehicles"],
            "confidence": row["confidence"],
            "location": Location(lat=row["lat"], lon=row["lon"]) if row["lat"] is not None else None,
            "cell_id": row["cell_id"],
            "segment_id": row["segment_id"],
            "window_start": row["window_start"],
            "window_end": row["window_end"],
            "score": row["score"],
            "evidence": row["evidence"],
        }
    )


async def _holding(conn: AsyncConnection, alert: Alert) -> dict[str, Any] | None:
    holds = alerts.c.vehicle_incidents.op("@>")(sa.cast([alert.alert_id], ARRAY(sa.Text)))  # GIN-indexed
    query = sa.select(alerts).where(holds).with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None


async def _same_incident_on_segment(conn: AsyncConnection, alert: Alert, cooldown_s: float) -> dict[str, Any] | None:
    if alert.segment_id is None:
        return None
    cooldown = timedelta(seconds=cooldown_s)
    query = (
        sa.select(alerts)
        .where(
            alerts.c.type == alert.type,
            alerts.c.segment_id == alert.segment_id,
            alerts.c.window_start <= alert.window_end + cooldown,
            alerts.c.window_end >= alert.window_start - cooldown,
        )
        .order_by(alerts.c.window_start, alerts.c.alert_id)
        .limit(1)
        .with_for_update()
    )
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row else None
