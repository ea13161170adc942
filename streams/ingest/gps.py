"""GPS ingest: validate each fix and keep the vehicle's recent fixes for the frame join."""

from __future__ import annotations

from fleetscope.errors import InvalidMessage
from streams import topics
from streams.deadletter import dead_letter
from streams.runtime import Runtime
from streams.schema import GpsFix, check_key, decode


def register(rt: Runtime) -> None:
    """Define the GPS ingest agent; fixes go into ``rt.gps``."""

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
            rt.gps.add(fix)
