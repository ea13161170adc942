"""Map matching in the pipeline: each vehicle's GPS fixes onto the road network, repartitioned by segment.

Fixes arrive keyed by vehicle. The agent validates them, keeps them for the frame join, runs the
vehicle's online matcher and kinematics, and sends the committed positions of each batch to
``fleet.segments.observations``, one message per segment, keyed by segment so that one worker owns
each segment's windows (``streams.context.segment_windows``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from faust.types import EventT

from records.messages import GpsFix, ObservedFix, SegmentObservations
from streams import metrics, topics
from streams.context import warmup
from streams.context.vehicle_track import TrackPoint, VehicleTracks
from streams.deadletter import admit_or_dead_letter, one_by_one
from streams.ingest.admission import Admission
from streams.runtime import Runtime

log = logging.getLogger(__name__)


def register(rt: Runtime, tracks: VehicleTracks) -> None:
    """Define the map-matching agent; fixes go into ``rt.gps`` and ``tracks``."""
    w = rt.settings.worker
    admission = Admission.of(w)

    async def send(points: list[TrackPoint]) -> None:
        by_segment: dict[str, list[ObservedFix]] = defaultdict(list)
        for p in points:
            by_segment[p.segment.segment_id].append(p.observation())
        late = sum(1 for p in points if not p.in_order)
        metrics.GPS_FIXES.labels("matched").inc(len(points) - late)
        metrics.GPS_FIXES.labels("matched_late").inc(late)
        metrics.HARD_BRAKING.inc(sum(p.hard_braking for p in points))
        for segment_id, fixes in by_segment.items():
            obs = SegmentObservations(segment_id=segment_id, fixes=fixes)
            await rt.send(topics.SEGMENT_OBSERVATIONS, segment_id, obs.encode())

    async def match(batch: Sequence[tuple[EventT, GpsFix]]) -> None:
        fixes = [fix for _, fix in batch]
        for fix in fixes:
            rt.gps.add(fix)
        repeated, forgotten = tracks.repeated, tracks.forgotten
        points = tracks.push_all(fixes, [event.message.partition for event, _ in batch])
        metrics.GPS_FIXES.labels("repeated").inc(tracks.repeated - repeated)
        metrics.VEHICLES_FORGOTTEN.inc(tracks.forgotten - forgotten)
        await send(points)

    warming = warmup.register(rt, tracks, admission, send)

    @rt.agent(topics.GPS, name="match-gps")
    async def match_gps(stream):  # type: ignore[no-untyped-def]
        async for events in stream.take_events(w.match_batch_size, within=w.match_linger_s):
            rt.received(topics.GPS, *events)
            admitted = [(e, await admit_or_dead_letter(rt, e, GpsFix, admission)) for e in events]
            await one_by_one(rt, "map-matching", [(e, f) for e, f in admitted if f is not None], match)

    async def waiting() -> set[int]:
        """The fleet.gps partitions with records this worker has not read yet."""
        topic = rt.settings.topic(topics.GPS)
        out = set()
        for tp in rt.app.consumer.assignment():
            if tp.topic == topic:
                position, highwater = await rt.reading(tp)
                if position is not None and highwater is not None and highwater > position:
                    out.add(tp.partition)
        return out

    # The matcher holds a vehicle's newest fixes until later ones settle them. A vehicle that stops
    # sending while its partition goes on is committed as the partition passes it (VehicleTracks);
    # this commits the vehicles of a partition that went quiet (the end of a drive or of the data).
    @rt.app.timer(w.match_idle_flush_s / 2)
    async def commit_idle_vehicles() -> None:
        if rt.app.rebalancing or rt.app.in_recovery or warming.running:  # partitions paused: not silent
            return
        try:
            await send(tracks.flush_idle(w.match_idle_flush_s, busy=await waiting()))
        except Exception:  # an exception would stop Faust's timer, and with it every later idle commit
            log.exception("committing idle vehicles' fixes failed; trying again at the next tick")
