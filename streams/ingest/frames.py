"""Frame ingest: admit each frame (``admission``: schema, key, a plausible time, a JPEG that decodes),
then attach the nearest GPS fix, the road segment and the ST context.

The enriched frame is keyed by its segment, so it reaches the worker that holds that segment's
traffic windows (the inference agent joins them there); a frame without a segment stays keyed by vehicle.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from faust.types import EventT

from records.messages import AttachedFix, EnrichedFrame, Frame, FramePosition, SegmentContext, utcnow
from streams import metrics, topics
from streams.context.gps_track import Row, nearest_fix, newest_ts
from streams.context.st_vector import cell_id, context_vector
from streams.context.vehicle_track import VehicleTracks
from streams.deadletter import admit_or_dead_letter, dead_letter_on_error
from streams.ingest.admission import Admission
from streams.runtime import Runtime


def register(rt: Runtime, tracks: VehicleTracks) -> None:
    """Define the frame ingest agent (joins with the fixes and tracks the map-matching agent keeps)."""
    w = rt.settings.worker
    admission = Admission.of(w)

    async def attach(frame: Frame) -> AttachedFix | None:
        history: list[Row] = rt.gps.history(frame.vehicle_id)
        fix = nearest_fix(history, frame.captured_at, w.gps_tolerance_s)
        # No fix yet near this frame's time, and the vehicle's GPS has not moved past it: a fix may be
        # late (GPS and frames are separate topics), so give it a grace period before going without.
        deadline = time.monotonic() + w.gps_grace_s
        frame_ts = frame.captured_at.timestamp()
        while fix is None and (newest_ts(history) or 0) < frame_ts + w.gps_tolerance_s:
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
            history = rt.gps.history(frame.vehicle_id)
            fix = nearest_fix(history, frame.captured_at, w.gps_tolerance_s)
        return fix

    async def enrich(event: EventT, frame: Frame) -> None:
        fix = await attach(frame)
        located = tracks.located(frame.vehicle_id, fix.ts) if fix else None
        if fix is None:
            metrics.FRAMES_WITHOUT_CONTEXT.inc()
        if located is None:
            metrics.FRAMES_WITHOUT_SEGMENT.inc()
        enriched = EnrichedFrame(
            frame=frame,
            gps=fix,
            cell_id=cell_id(fix.lat, fix.lon, w.cell_deg) if fix else None,
            segment=SegmentContext(
                segment_id=located.segment.segment_id, offset_m=located.offset_m, committed=located.committed
            )
            if located
            else None,
            st_context=context_vector(frame.captured_at, fix, w.gps_tolerance_s, located.segment if located else None),
            produced_at=datetime.fromtimestamp(event.message.timestamp, timezone.utc),
            source=FramePosition(partition=event.message.partition, offset=event.message.offset),
            ingested_at=utcnow(),
        )
        key = located.segment.segment_id if located else frame.vehicle_id
        await rt.send(topics.FRAMES_ENRICHED, key, enriched.encode())

    # Concurrency lets frames waiting for a late fix overlap instead of queueing behind each other.
    @rt.agent(topics.FRAMES, name="ingest-frames", concurrency=4)
    async def ingest_frames(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            rt.received(topics.FRAMES, event)
            frame = await admit_or_dead_letter(rt, event, Frame, admission)
            if frame is not None:
                async with dead_letter_on_error(rt, event, "ingest"):
                    await enrich(event, frame)
