"""Per-segment traffic windows: a Faust hopping-window table keyed by road segment.

The map-matching agent repartitions matched fixes by segment (``fleet.segments.observations``), so
one worker owns each segment's windows. A window's value holds every matched fix by vehicle and time,
so processing a message twice (at-least-once delivery after a crash) changes nothing, and the counts
are exact: fixes, vehicles, trajectories (passes through the segment), median GPS speed (each
vehicle's speeds smoothed first, see ``kinematics.smoothed_speeds``) and hard brakes. Changed
windows go to Postgres ``segment_stats`` as absolute values every ``segment_flush_s``.

Windows expire by event time (``segment_window_keep_s`` behind the newest fix of their partition);
Faust's own expiry uses the wall clock, which would drop replayed or simulated data at once. A fix
older than that is counted and ignored, because its window may already be gone from memory.
"""

from __future__ import annotations

import heapq
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, cast

import faust
import numpy as np
from aiokafka.partitioner import murmur2
from faust.types import EventT

from core.errors import InvalidMessage
from records.messages import ObservedFix, SegmentObservations, SegmentWindow
from roads.network import RoadNetwork
from streams import metrics, topics
from streams.context.kinematics import smoothed_speeds
from streams.deadletter import decode_or_dead_letter, one_by_one
from streams.runtime import Runtime
from streams.sinks.postgres import PostgresSink, is_outage
from streams.windows import WindowRange, earliest_range, hopping_ranges

log = logging.getLogger(__name__)

TRAVERSAL_GAP_S = 30.0  # a vehicle back on a segment after this long is on a new pass
WindowValue = dict[str, dict[str, list[Any]]]  # vehicle -> "epoch seconds" -> [speed_mps | None, hard_braking 0/1]


def merged(value: WindowValue, fixes: Iterable[ObservedFix]) -> WindowValue:
    """``value`` with ``fixes`` added; a fix already there (same vehicle and time) replaces itself."""
    out = {vehicle: dict(by_time) for vehicle, by_time in value.items()}
    for f in fixes:
        out.setdefault(f.vehicle_id, {})[f"{f.ts.timestamp():.3f}"] = [f.speed_mps, int(f.hard_braking)]
    return out


def as_of(value: WindowValue, cutoff_s: float) -> WindowValue:
    """The fixes of ``value`` taken at or before ``cutoff_s`` (epoch seconds).

    A frame's context must not depend on how far the GPS stream has been read past the frame: on a
    backlog or after a rebalance the window may already hold fixes from seconds later.
    """
    kept = {v: {t: x for t, x in by_time.items() if float(t) <= cutoff_s} for v, by_time in value.items()}
    return {v: by_time for v, by_time in kept.items() if by_time}


def window_stats(segment_id: str, window: WindowRange, window_s: int, value: WindowValue) -> SegmentWindow:
    """The traffic of one segment window, computed from its value."""
    tracks: list[list[float]] = []
    fixes = trajectories = hard_brakes = 0
    for _, by_time in sorted(value.items()):  # vehicle order fixed: equal values give bit-equal stats
        series = sorted((float(t), speed, braking) for t, (speed, braking) in by_time.items())
        trajectories += 1 + sum(1 for a, b in zip(series, series[1:], strict=False) if b[0] - a[0] > TRAVERSAL_GAP_S)
        fixes += len(series)
        hard_brakes += sum(int(braking) for _, _, braking in series)
        tracks.append([float(speed) for _, speed, _ in series if speed is not None])
    speeds = smoothed_speeds(tracks)
    return SegmentWindow(
        segment_id=segment_id,
        window_start=datetime.fromtimestamp(window[0], timezone.utc),
        window_seconds=window_s,
        fixes=fixes,
        vehicles=len(value),
        trajectories=trajectories,
        median_speed_mps=float(np.median(speeds)) if len(speeds) else None,
        hard_brakes=hard_brakes,
    )


def partition_of(segment_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a segment-keyed message (murmur2, as the Java client)."""
    return (murmur2(segment_id.encode()) & 0x7FFFFFFF) % partitions


class SegmentTable(faust.Table):
    """A table keyed by segment (windowed keys are ``(segment_id, window)``).

    A key's changelog partition is its segment's partition in ``fleet.segments.observations``, stated
    rather than taken from the event being processed (Faust's default), so a batch of messages from
    several partitions can be folded in with one write per window.
    """

    def partition_for_key(self, key: Any) -> int:
        segment_id = key[0] if isinstance(key, tuple | list) else key
        return partition_of(str(segment_id), cast(int, self.partitions))


class SegmentWindows:
    """The windowed table, the agent that fills it, and the flush of changed windows to ``segment_stats``."""

    def __init__(self, rt: Runtime, network: RoadNetwork, sink: PostgresSink) -> None:
        w = rt.settings.worker
        self.rt, self.network, self.sink = rt, network, sink
        self.window_s, self.keep_s = w.segment_window_s, w.segment_window_keep_s
        self.hop_s = w.segment_hop_s
        self.store = cast(
            SegmentTable,
            rt.app.tables.add(
                SegmentTable(
                    rt.app,
                    name=topics.SEGMENT_WINDOWS_TABLE,
                    default=dict,
                    partitions=rt.settings.kafka.partitions,
                    beacon=rt.app.tables.beacon,
                )
            ),
        )
        self.table = self.store.using_window(faust.HoppingWindow(w.segment_window_s, w.segment_hop_s))
        self.dirty: set[tuple[str, WindowRange]] = set()
        self._newest: dict[int, float] = defaultdict(float)  # partition -> newest fix time seen (event time)
        self._expiry: dict[int, list[tuple[float, str, WindowRange]]] = defaultdict(list)
        self.store.on_recover(self._recovered)

    def lookup(self, segment_id: str, at: datetime, horizon_s: float) -> SegmentWindow | None:
        """The window of ``segment_id`` with the most history before ``at``, as it was ``horizon_s``
        after ``at`` (None if it holds no fix by then)."""
        window = earliest_range(at.timestamp(), self.window_s, self.hop_s)
        value = as_of(self.table[segment_id][window], at.timestamp() + horizon_s)
        return window_stats(segment_id, window, self.window_s, value) if value else None

    def add(self, batch: Iterable[SegmentObservations]) -> None:
        """Fold messages into their segments' windows, one changelog write per window touched."""
        partitions = self.rt.settings.kafka.partitions
        by_window: dict[tuple[str, WindowRange], list[ObservedFix]] = defaultdict(list)
        for obs in batch:
            partition = partition_of(obs.segment_id, partitions)
            newest = self._newest[partition] = max([self._newest[partition], *(f.ts.timestamp() for f in obs.fixes)])
            for f in obs.fixes:
                if f.ts.timestamp() < newest - self.keep_s:
                    metrics.SEGMENT_FIXES_TOO_LATE.inc()
                    continue
                for window in hopping_ranges(f.ts.timestamp(), self.window_s, self.hop_s):
                    by_window[(obs.segment_id, window)].append(f)
        for (segment_id, window), fixes in by_window.items():
            windows = self.table[segment_id]
            if not windows[window]:  # a new window: it expires by event time
                partition = partition_of(segment_id, partitions)
                heapq.heappush(self._expiry[partition], (window[1], segment_id, window))
            windows[window] = merged(windows[window], fixes)
            self.dirty.add((segment_id, window))
        for partition, newest in self._newest.items():
            self._expire(partition, newest - self.keep_s)

    def _expire(self, partition: int, before: float) -> None:
        heap = self._expiry[partition]
        while heap and heap[0][0] < before:
            _, segment_id, window = heapq.heappop(heap)
            if (segment_id, window) in self.dirty:  # not written to segment_stats yet: keep until flushed
                heapq.heappush(heap, (before + self.window_s, segment_id, window))
                break
            del self.table[segment_id][window]

    async def _recovered(self) -> None:
        # Recovered windows are not in the expiry heaps yet, and may never have reached segment_stats.
        partitions = self.rt.settings.kafka.partitions
        for key in list(self.store.data.keys()):
            segment_id, window = key[0], cast(WindowRange, tuple(key[1]))
            heapq.heappush(self._expiry[partition_of(segment_id, partitions)], (window[1], segment_id, window))
            self.dirty.add((segment_id, window))
        log.info("segment windows recovered: %d windows", len(self.store.data))

    async def flush(self) -> int:
        """Write every changed window to ``segment_stats``; on failure they stay changed for the next try."""
        if not self.dirty:
            return 0
        batch, self.dirty = self.dirty, set()
        rows = []
        for segment_id, window in sorted(batch):
            value = self.table[segment_id][window]
            try:
                if value:
                    stats = window_stats(segment_id, window, self.window_s, value)
                    rows.append((stats, self.network.by_id(segment_id)))
            except Exception:  # kept dirty, one bad window would stop every later flush
                metrics.SINK_ERRORS.labels("segment_stats_window").inc()
                log.exception("segment window %s %s cannot be summarised; it is not written", segment_id, window)
        try:
            await self.sink.write_segment_stats(rows)
        except Exception as exc:
            if is_outage(exc):  # PostgreSQL away: all of them go with the next flush
                self.dirty |= batch
                raise
            # PostgreSQL refused the batch for something in it: write the windows one by one, and
            # drop (counted) those it refuses alone, or one bad window would stop every later flush.
            log.warning("segment_stats refused a batch of %d windows (%s); writing them one by one", len(rows), exc)
            for row in rows:
                try:
                    await self.sink.write_segment_stats([row])
                except Exception as one:
                    if is_outage(one):
                        self.dirty |= batch
                        raise
                    metrics.SINK_ERRORS.labels("segment_stats_window").inc()
                    log.error(
                        "segment window %s %s refused, not written: %s", row[0].segment_id, row[0].window_start, one
                    )
        return len(rows)


def register(rt: Runtime, network: RoadNetwork, sink: PostgresSink) -> SegmentWindows:
    """Define the segment-window agent and its flush timer; return the windows for the frame join."""
    windows = SegmentWindows(rt, network, sink)

    w = rt.settings.worker
    known = _known(network)

    stage = "segment-windows"

    async def add(batch: Sequence[tuple[EventT, SegmentObservations]]) -> None:
        windows.add(obs for _, obs in batch)

    @rt.agent(topics.SEGMENT_OBSERVATIONS, name="segment-windows")
    async def segment_windows(stream):  # type: ignore[no-untyped-def]
        async for events in stream.take_events(w.match_batch_size, within=w.match_linger_s):
            rt.received(topics.SEGMENT_OBSERVATIONS, *events)
            batch = [(e, await decode_or_dead_letter(rt, e, SegmentObservations, stage, known)) for e in events]
            await one_by_one(rt, stage, [(e, obs) for e, obs in batch if obs is not None], add)

    @rt.app.timer(w.segment_flush_s)
    async def flush_segment_stats() -> None:
        try:
            if await windows.flush():  # only a write that reached PostgreSQL says it is back
                rt.postgres.ok()
        except Exception as exc:  # the windows stay changed and go with the next flush
            metrics.SINK_ERRORS.labels("segment_stats").inc()
            if is_outage(exc):
                rt.postgres.failed(exc)
            else:
                log.warning("segment_stats not written (%s); will retry", str(exc).splitlines()[0])

    return windows


def _known(network: RoadNetwork) -> Any:
    """A check that the message names a segment of this worker's road network."""

    def check(obs: SegmentObservations, event: Any) -> None:
        try:
            network.by_id(obs.segment_id)
        except KeyError:
            raise InvalidMessage("unknown_segment", f"{obs.segment_id} is not in {network.source}") from None

    return check
