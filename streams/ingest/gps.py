"""GPS ingest: validate each fix and keep the vehicle's recent fixes in a Faust table."""

from __future__ import annotations

from fleetscope.errors import InvalidMessage
from streams import topics
from streams.context.gps_track import add_fix
from streams.deadletter import dead_letter
from streams.runtime import Runtime
from streams.schema import GpsFix, check_key, decode


def register(rt: Runtime) -> None:
    """Define the GPS table and agent on the app."""
    keep = rt.settings.worker.gps_history
    table = rt.app.Table(
        topics.GPS_TABLE,
        default=list,
        key_type=str,
        value_type=list,
        partitions=rt.settings.kafka.partitions,
    )
    rt.tables[topics.GPS_TABLE] = table

    @rt.app.agent(rt.topic(topics.GPS), name="ingest-gps")
    async def ingest_gps(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            rt.received(topics.GPS, event)
            try:
                fix = decode(GpsFix, event.value)
                check_key(event.key, fix.vehicle_id)
            except InvalidMessage as exc:
                await dead_letter(rt, event, "ingest", exc.reason, exc.detail)
                continue
            table[fix.vehicle_id] = add_fix(table[fix.vehicle_id], fix, keep)

