"""Alerts in PostgreSQL: one row per incident, merged across vehicles on the same road segment.

The worker that owns a vehicle raises that vehicle's incidents (``alerts.incidents``); only the
database sees every worker's. A vehicle incident is stored into

1. the alert that already holds it (its id is in ``vehicle_incidents``), else
2. an alert of the same type on the same segment whose window is within ``cooldown`` of its own
   (another vehicle saw the same incident: corroboration), else
3. a new alert with the vehicle incident's id.

Merging keeps the highest score (and its severity and evidence), the union of frames and vehicles,
each vehicle's best score, and the widest window; confidence is 1 - the product over vehicles of
(1 - their best score), so each corroborating vehicle raises it. Every step is a maximum or a union,
so storing the same alerts again changes nothing. A transaction-level advisory lock per alert type
keeps two workers from creating the same segment incident twice; alerts are rare, so it costs little.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from streams.schema import Alert, Location
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


def alert_row(alert: Alert) -> dict[str, Any]:
    """The alerts row of one vehicle's incident, before any merge."""
    evidence = dict(alert.evidence)
    evidence["frame_ids"] = sorted(evidence["frame_ids"])
    evidence["vehicle_scores"] = {alert.vehicle_id: alert.score}
    return {
        "alert_id": alert.alert_id,
        "type": alert.type,
        "severity": alert.severity,
        "vehicle_id": alert.vehicle_id,
        "vehicles": [alert.vehicle_id],
        "vehicle_incidents": [alert.alert_id],
        "confidence": alert.score,
        "lat": alert.location.lat if alert.location else None,
        "lon": alert.location.lon if alert.location else None,
        "cell_id": alert.cell_id,
        "segment_id": alert.segment_id,
        "window_start": alert.window_start,
        "window_end": alert.window_end,
        "score": alert.score,
        "frame_ids": evidence["frame_ids"],
        "evidence": evidence,
    }


def merged_row(current: dict[str, Any], alert: Alert) -> dict[str, Any]:
    """``current`` (a stored alert) with one more vehicle incident folded in."""
    new = alert_row(alert)
    higher = new["score"] > current["score"]
    best = new if higher else current
    vehicle_scores = dict(current["evidence"].get("vehicle_scores", {current["vehicle_id"]: current["score"]}))
    vehicle_scores[alert.vehicle_id] = max(vehicle_scores.get(alert.vehicle_id, 0.0), alert.score)
    frame_ids = sorted(set(current["frame_ids"]) | set(new["frame_ids"]))
    return {
        "alert_id": current["alert_id"],
        "type": current["type"],
        "severity": best["severity"],
        "vehicle_id": current["vehicle_id"],
        "vehicles": sorted(vehicle_scores),
        "vehicle_incidents": sorted(set(current["vehicle_incidents"]) | {alert.alert_id}),
        "confidence": corroborated(vehicle_scores.values()),
        **{k: current[k] if current[k] is not None else new[k] for k in ("lat", "lon", "cell_id", "segment_id")},
        "window_start": min(current["window_start"], new["window_start"]),
        "window_end": max(current["window_end"], new["window_end"]),
        "score": best["score"],
        "frame_ids": frame_ids,
        "evidence": best["evidence"] | {"frame_ids": frame_ids, "vehicle_scores": dict(sorted(vehicle_scores.items()))},
    }


def corroborated(scores: Any) -> float:
    """Confidence that an incident is real when each vehicle's best score is an independent report."""
    return 1.0 - math.prod(1.0 - s for s in scores)


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
