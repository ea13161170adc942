"""Alerts in PostgreSQL: one row per incident on a road segment, corroborated by every vehicle that
reports it, and unchanged when the same alerts are stored again (the stack's real PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from core.settings import Settings
from fusion.incidents import alert_id
from records.messages import Alert, Location, utcnow
from streams.sinks.alert_store import store_alert
from streams.sinks.tables import alerts

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=timezone.utc)
COOLDOWN_S = 60.0


def incident(car: str, segment: str, start_s: float, score: float, frames: int = 2) -> Alert:
    """Vehicle ``car``'s collision incident on ``segment``, ``start_s`` after T0, lasting 4 s.

    Vehicle ids are the car's name on the segment (``car-a@test-segment-1234``), so that tests do
    not share incidents: an incident's id is its vehicle, type and start.
    """
    vehicle = f"{car}@{segment}"
    start = T0 + timedelta(seconds=start_s)
    return Alert(
        alert_id=alert_id(vehicle, "collision", start),
        type="collision",
        severity="critical" if score >= 0.9 else "major",
        vehicle_id=vehicle,
        vehicles=[vehicle],
        confidence=score,
        location=Location(lat=60.17, lon=24.94),
        cell_id="c",
        segment_id=segment,
        window_start=start,
        window_end=start + timedelta(seconds=4),
        score=score,
        evidence={"rule": "collision", "frame_ids": [f"{vehicle}-{start_s:g}-{n}" for n in range(frames)]},
        raised_at=utcnow(),
    )


async def store_all(settings: Settings, batch: list[Alert]) -> list[Alert]:
    engine = create_async_engine(settings.postgres.url("asyncpg"))
    try:
        async with engine.begin() as conn:
            return [await store_alert(conn, a, COOLDOWN_S) for a in batch]
    finally:
        await engine.dispose()


def rows_on(settings: Settings, segment: str) -> list[dict]:
    """The segment's alerts, vehicle ids shortened back to the car names."""
    engine = sa.create_engine(settings.postgres.url("psycopg"))
    try:
        with engine.connect() as conn:
            query = sa.select(alerts).where(alerts.c.segment_id == segment).order_by(alerts.c.window_start)
            rows = [dict(r) for r in conn.execute(query).mappings()]
    finally:
        engine.dispose()
    for r in rows:
        r["vehicles"] = [v.split("@")[0] for v in r["vehicles"]]
        r["evidence"]["vehicle_scores"] = {v.split("@")[0]: s for v, s in r["evidence"]["vehicle_scores"].items()}
    return [{k: v for k, v in r.items() if k not in ("created_at", "updated_at")} for r in rows]


@pytest.fixture
def segment() -> str:
    return f"test-segment-{uuid.uuid4().hex[:8]}"


def test_two_vehicles_reporting_one_incident_on_a_segment_make_one_alert_with_higher_confidence(settings, segment):
    first, second = incident("car-a", segment, 0, 0.7), incident("car-b", segment, 20, 0.8, frames=3)

    stored = asyncio.run(store_all(settings, [first, second]))

    (row,) = rows_on(settings, segment)
    assert row["alert_id"] == first.alert_id == stored[1].alert_id
    assert row["vehicles"] == ["car-a", "car-b"] and stored[1].vehicles == [first.vehicle_id, second.vehicle_id]
    assert row["vehicle_incidents"] == sorted([first.alert_id, second.alert_id])
    assert row["confidence"] == pytest.approx(1 - 0.3 * 0.2) and row["confidence"] > max(first.score, second.score)
    assert row["score"] == 0.8 and row["severity"] == "major"
    assert len(row["frame_ids"]) == 5
    assert (row["window_start"], row["window_end"]) == (first.window_start, second.window_end)
    assert row["evidence"]["vehicle_scores"] == {"car-a": 0.7, "car-b": 0.8}


def test_an_incident_after_the_cooldown_or_of_another_type_is_another_alert(settings, segment):
    first = incident("car-a", segment, 0, 0.7)
    later = incident("car-b", segment, 4 + COOLDOWN_S + 1, 0.9)
    other_type = incident("car-c", segment, 1, 0.9)
    other_type = other_type.model_copy(
        update={"type": "stopped_vehicle", "alert_id": alert_id(other_type.vehicle_id, "stopped_vehicle", T0)}
    )

    asyncio.run(store_all(settings, [first, later, other_type]))

    rows = rows_on(settings, segment)
    assert [(r["type"], r["vehicles"]) for r in rows] == [
        ("collision", ["car-a"]),
        ("stopped_vehicle", ["car-c"]),
        ("collision", ["car-b"]),
    ]
    assert [r["confidence"] for r in rows] == [0.7, 0.9, 0.9]


def test_a_vehicle_incident_updated_later_stays_in_the_alert_it_was_merged_into(settings, segment):
    first, second = incident("car-a", segment, 0, 0.7), incident("car-b", segment, 20, 0.75)
    asyncio.run(store_all(settings, [first, second]))
    # car-b's incident fires again, now past car-a's cooldown, with a higher score.
    grown = second.model_copy(
        update={"window_end": second.window_end + timedelta(seconds=70), "score": 0.95, "severity": "critical"}
    )

    asyncio.run(store_all(settings, [grown]))

    (row,) = rows_on(settings, segment)
    assert row["alert_id"] == first.alert_id and row["severity"] == "critical"
    assert row["evidence"]["vehicle_scores"] == {"car-a": 0.7, "car-b": 0.95}


def test_storing_the_same_alerts_again_leaves_the_table_identical(settings, segment):
    batch = [
        incident("car-a", segment, 0, 0.7),
        incident("car-b", segment, 10, 0.9),
        incident("car-c", segment, 30, 0.6),
    ]
    asyncio.run(store_all(settings, batch))
    first = rows_on(settings, segment)

    asyncio.run(store_all(settings, batch))
    asyncio.run(store_all(settings, list(reversed(batch))))

    assert rows_on(settings, segment) == first


def test_a_replayed_incident_scored_a_few_ulps_apart_leaves_the_table_identical(settings, segment):
    # Batched inference on CPU scores one frame slightly differently in batches of other sizes.
    batch = [incident("car-a", segment, 0, 0.40029097), incident("car-b", segment, 10, 0.39105186)]
    asyncio.run(store_all(settings, batch))
    first = rows_on(settings, segment)

    rescored = [a.model_copy(update={"score": a.score + 1.2e-7, "confidence": a.score + 1.2e-7}) for a in batch]
    asyncio.run(store_all(settings, rescored))

    assert rows_on(settings, segment) == first
