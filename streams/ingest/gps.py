"""GPS ingest: validate each fix and keep the vehicle's recent fixes for the frame join."""

from __future__ import annotations

from streams import topics
from streams.deadletter import decode_or_dead_letter
from streams.runtime import Runtime
from streams.schema import GpsFix, keyed_by_vehicle


def register(rt: Runtime) -> None:
    """Define the GPS ingest agent; fixes go into ``rt.gps``."""

    @rt.app.agent(rt.topic(topics.GPS), name="ingest-gps")
    async def ingest_gps(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            rt.received(topics.GPS, event)
            fix = await decode_or_dead_letter(rt, event, GpsFix, "ingest", check=keyed_by_vehicle)
            if fix is not None:
                rt.gps.add(fix)
