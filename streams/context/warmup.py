"""The map matcher of a GPS partition a worker takes over, rebuilt from the partition's history.

A vehicle's matcher (fixed-lag Viterbi), kinematics and recent fixes live in the memory of the
worker that owns its fleet.gps partition. When the partition moves (a rebalance; a worker killed,
restarted or scaled away), the new owner reads on from the committed offset. Started cold, it
matches the vehicle's next fixes without their history and can put one on another segment than the
old owner did (two segments' windows then count it), and the fixes the old matcher held pending are
never committed. So once a rebalance is complete and before the partitions are resumed, each newly
assigned GPS partition's records from ``match_warmup_s`` (fix time) before its committed offset up
to that offset are read again, admitted as the agent admits them, and replayed into the tracks and
the recent fixes, with the idle commits the old owner made where the stream went quiet (told by the
records' Kafka timestamps). What the replay commits was committed by the old owner and is not sent again,
except at a pause that lasts to the end of the history: an old owner killed within ``match_idle_flush_s``
of its last fix may have committed that fix's offset but not yet made its idle commit, so the replay
sends it (a window keys fixes by vehicle and time, so one sent twice counts once there), unless the
pause is longer than ``segment_window_keep_s`` (their windows may be gone). The fixes still pending are
committed by the live fixes that follow, on the chains the old owner had.
A failed or slow read leaves the partition cold, as it was before this existed; it never stops the
worker. The reads are bounded (``READ_TIMEOUT_S`` of reading for a rebalance; a partition not read by
then starts cold); the replay (CPU, about 18,000 fixes/s here) runs in steps, letting the event loop
run between them, so the consumer's heartbeats go on however long it takes. A replay cut short (a
new rebalance cancels it) forgets its partition, which then starts cold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiokafka
from aiokafka.structs import ConsumerRecord

from core.errors import InvalidMessage
from records.messages import GpsFix
from streams import metrics, topics
from streams.context.vehicle_track import TrackPoint, VehicleTracks
from streams.ingest.admission import Admission
from streams.runtime import Runtime
from streams.side_consumer import side_consumer

log = logging.getLogger(__name__)
T = TypeVar("T")
READ_TIMEOUT_S = 30.0  # for all the reads of one rebalance
FIRST_CHUNK = 512  # records read back at first; doubled until the history is long enough


async def read_range(
    reader: aiokafka.AIOKafkaConsumer, tp: aiokafka.TopicPartition, start: int, end: int
) -> list[ConsumerRecord]:
    """The records of ``tp`` at offsets ``start`` to ``end - 1`` (fewer where the log has gaps)."""
    reader.seek(tp, start)
    out: list[ConsumerRecord] = []
    while await reader.position(tp) < end:
        got = await reader.getmany(tp, timeout_ms=500)
        out += [r for r in got.get(tp, []) if r.offset < end]
    return out


def admitted(records: list[ConsumerRecord], admission: Admission) -> list[tuple[float, GpsFix]]:
    """The fixes the map-matching agent admitted from ``records`` (it dead-lettered the others), each
    with its record's Kafka timestamp in seconds."""
    out = []
    for r in records:
        try:
            out.append((r.timestamp / 1000.0, admission.admit(GpsFix, r.value, r.key, r.timestamp / 1000.0).message))
        except InvalidMessage:
            continue
    return out


async def history(
    reader: aiokafka.AIOKafkaConsumer,
    tp: aiokafka.TopicPartition,
    first: int,
    end: int,
    admission: Admission,
    span_s: float,
    max_records: int,
) -> list[tuple[float, GpsFix]]:
    """The admitted fixes before offset ``end`` with their Kafka timestamps, reading back from it until
    they cover ``span_s`` of fix time, the log's ``first`` offset is reached or ``max_records`` were
    read; in offset order."""
    fixes: list[tuple[float, GpsFix]] = []
    start, chunk = end, FIRST_CHUNK
    while start > first and end - start < max_records:
        lower = max(first, start - chunk, end - max_records)
        fixes = admitted(await read_range(reader, tp, lower, start), admission) + fixes
        start, chunk = lower, chunk * 2
        times = [f.ts.timestamp() for _, f in fixes]
        if times and max(times) - min(times) >= span_s:
            break
    return fixes


def quiet_after(times: list[float], then: float, idle_s: float) -> list[int]:
    """The indices after which a stream with records at Kafka ``times`` went quiet for ``idle_s``
    (``then``: the time of the record after the last one, or now if there is none yet).

    A worker reading the stream as it came commits its vehicles' pending fixes there
    (``VehicleTracks.flush_idle``); one that was behind, with records waiting, did not: the replay
    cannot tell the two apart and takes the first, the usual case."""
    following = [*times[1:], then] if times else []
    return [i for i, (t, after) in enumerate(zip(times, following, strict=True)) if after - t >= idle_s]


async def replay(
    tracks: VehicleTracks,
    partition: int,
    timed: list[tuple[float, GpsFix]],
    then: float,
    idle_s: float,
    send: Callable[[list[TrackPoint]], Awaitable[None]],
    resend_within_s: float = math.inf,
) -> int:
    """Replay a partition's history (fixes with their Kafka timestamps; ``then``: the time of the record
    after them) into ``tracks`` in steps, the event loop running between them. Then send two things:
    the idle commit at a pause that ends the history, if that pause began at most ``resend_within_s``
    before ``then``; and what forgetting vehicles past the bound commits. Return how many fixes were
    replayed. Cut short (cancelled by a new rebalance, or failed), the partition is forgotten: half a
    replay would count some fixes twice."""
    fixes = [f for _, f in timed]
    quiet = quiet_after([t for t, _ in timed], then, idle_s)
    # A pause that lasts to the record after the history (or to now) may have outlived the old owner:
    # killed before its idle commit there, it took the pending fixes with it. The replay makes that
    # commit after the steps and sends it; where the old owner did send it, a window counts a fix once
    # (the GPS counters count it again). Not after a long pause: the windows those fixes belong to
    # may have expired, and one rebuilt from them alone would overwrite its complete segment_stats row.
    ends_quiet = bool(quiet) and quiet[-1] == len(fixes) - 1 and then - timed[-1][0] <= resend_within_s
    done = 0
    steps = tracks.warm_steps(fixes, partition, quiet[:-1] if ends_quiet else quiet)
    try:
        for step in steps:
            done = step
            await asyncio.sleep(0)  # between steps the consumer heartbeats and the probes answer
    except BaseException:
        steps.close()
        tracks.keep_sources(tracks.sources() - {partition})
        raise
    points = tracks.flush_source(partition) if ends_quiet else []
    forgotten = tracks.forgotten
    points += tracks.trim()
    metrics.VEHICLES_FORGOTTEN.inc(tracks.forgotten - forgotten)
    # Those fixes' offsets are committed and only this worker holds them: send them even if cancelled.
    await asyncio.shield(send(points))
    return done


class WarmUp:
    """Whether a warm-up is replaying now (the idle commits wait it out: its partitions are not silent)."""

    running: bool = False


def register(
    rt: Runtime,
    tracks: VehicleTracks,
    admission: Admission,
    send: Callable[[list[TrackPoint]], Awaitable[None]],
) -> WarmUp:
    """Warm up the partitions each rebalance assigns, before they are resumed; ``send`` sends what
    forgetting vehicles past ``max_vehicles`` commits once a replay is done."""
    w = rt.settings.worker
    gps_topic = rt.settings.topic(topics.GPS)
    state = WarmUp()

    async def recent(
        reader: aiokafka.AIOKafkaConsumer, tp: aiokafka.TopicPartition, first: int, end: int
    ) -> tuple[list[tuple[float, GpsFix]], float] | None:
        """A partition's last ``match_warmup_s`` of admitted fixes before its committed offset, with the
        time of the record after them; None if the group never read it."""
        committed = await reader.committed(tp)
        if not committed:  # never read by the group: nothing came before
            return None
        timed = await history(reader, tp, first, committed, admission, w.match_warmup_s, w.match_warmup_records)
        following = await read_range(reader, tp, committed, committed + 1) if end > committed else []
        then = following[0].timestamp / 1000.0 if following else time.time()
        # The chunks read back may reach further than asked: replay what was asked for.
        newest = max((f.ts.timestamp() for _, f in timed), default=0.0)
        return [(t, f) for t, f in timed if f.ts.timestamp() >= newest - w.match_warmup_s], then

    async def warm(partitions: list[int]) -> tuple[int, int]:
        budget = READ_TIMEOUT_S  # for the reads only: the replays between them are CPU work of their own

        async def read(step: Awaitable[T]) -> T:
            nonlocal budget
            began = time.monotonic()
            try:
                return await asyncio.wait_for(step, budget)
            finally:
                budget -= time.monotonic() - began

        reader = side_consumer(rt.app, group_id=rt.app.conf.id)
        try:
            await read(reader.start())
            tps = [aiokafka.TopicPartition(gps_topic, p) for p in partitions]
            reader.assign(tps)
            firsts = await read(reader.beginning_offsets(tps))
            ends = await read(reader.end_offsets(tps))
            read_back = replayed = 0
            for tp in tps:
                try:
                    got = await read(recent(reader, tp, firsts[tp], ends[tp]))
                except TimeoutError:
                    log.warning(
                        "GPS partition %d not warmed up: its history was not read within %.0f s of reading for"
                        " this rebalance; its vehicles start cold",
                        tp.partition,
                        READ_TIMEOUT_S,
                    )
                    continue
                if got is None:
                    continue
                timed, then = got
                for _, fix in timed:
                    rt.gps.add(fix)
                read_back += len(timed)
                replayed += await replay(
                    tracks, tp.partition, timed, then, w.match_idle_flush_s, send, w.segment_window_keep_s
                )
            return read_back, replayed
        finally:
            with contextlib.suppress(Exception):  # what stopped the warm-up is the error to report
                await reader.stop()

    # faust's Signal.connect annotation accepts no async handler, hence the ignore.
    @rt.app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def warm_up_taken_over(sender: Any, **kwargs: Any) -> None:
        assigned = {tp.partition for tp in rt.app.consumer.assignment() if tp.topic == gps_topic}
        new = sorted(assigned - tracks.sources())
        tracks.keep_sources(assigned)
        if not new or w.match_warmup_s <= 0:
            return
        began = time.monotonic()
        state.running = True
        try:
            read, replayed = await warm(new)
        except Exception as exc:  # TimeoutError included: the partitions start cold, as without a warm-up
            error = f"reads took over {READ_TIMEOUT_S:.0f} s" if isinstance(exc, TimeoutError) else repr(exc)
            log.warning(
                "warm-up of GPS partitions %s stopped (%s); those not replayed by then start cold",
                new,
                error,
            )
            return
        finally:
            state.running = False
        log.info(
            "map matcher warmed up for GPS partitions %s: %d fixes read back, %d replayed, in %.1f s",
            new,
            read,
            replayed,
            time.monotonic() - began,
        )

    return state
