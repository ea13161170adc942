"""Reading a GPS partition's history back from before an offset, on the real broker: as far as the
fix time asked for and no further, never past the offset, in offset order, skipping what the agent
would not have admitted."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import aiokafka
import pytest

from core.settings import Settings
from infra.broker import ensure_topics
from records.messages import GpsFix
from roads.network import load_network
from streams import topics
from streams.app import create_app
from streams.context import warmup
from streams.context.vehicle_track import VehicleTracks
from streams.ingest.admission import Admission
from streams.producer import FleetProducer
from streams.side_consumer import side_consumer
from tests.streams.test_vehicle_track import IDLE_S, fleet, matched
from tests.streams.test_vehicle_track import partition as track_partition

T0 = datetime(2026, 11, 5, 9, 0, tzinfo=timezone.utc)
GARBAGE = 10  # records the agent dead-letters, first in the partition
FIXES = 1500  # one vehicle, one a second


@pytest.fixture(scope="module")
def partition(settings: Settings) -> tuple[Settings, int]:
    """A topic set of its own holding GARBAGE bad records then FIXES fixes of one vehicle; its partition."""
    own = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"topic_prefix": f"warmup-{uuid.uuid4().hex[:8]}."})}
    )
    ensure_topics(own)
    with FleetProducer(own) as producer:
        for _ in range(GARBAGE):
            producer.send_raw(topics.GPS, "van-1", b"not json")
        for i in range(FIXES):
            producer.send_gps(GpsFix(vehicle_id="van-1", ts=T0 + timedelta(seconds=i), lat=60.17, lon=24.94))
        producer.flush()
    return own, _partition_holding(own)


def _partition_holding(settings: Settings) -> int:
    async def ends() -> dict[int, int]:
        reader = side_consumer(create_app(settings).app)
        await reader.start()
        try:
            tps = [aiokafka.TopicPartition(settings.topic(topics.GPS), p) for p in range(settings.kafka.partitions)]
            return {tp.partition: end for tp, end in (await reader.end_offsets(tps)).items()}
        finally:
            await reader.stop()

    (held,) = [p for p, end in asyncio.run(ends()).items() if end]
    return held


def read_back(
    settings: Settings, partition: int, end: int, span_s: float, max_records: int
) -> list[tuple[float, GpsFix]]:
    async def run() -> list[tuple[float, GpsFix]]:
        reader = side_consumer(create_app(settings).app)
        await reader.start()
        try:
            tp = aiokafka.TopicPartition(settings.topic(topics.GPS), partition)
            reader.assign([tp])
            first = (await reader.beginning_offsets([tp]))[tp]
            return await warmup.history(reader, tp, first, end, Admission.of(settings.worker), span_s, max_records)
        finally:
            await reader.stop()

    return asyncio.run(run())


def seconds(fixes: list[tuple[float, GpsFix]]) -> list[int]:
    return [int((f.ts - T0).total_seconds()) for _, f in fixes]


def test_history_reads_back_one_chunk_when_it_covers_the_fix_time_asked_for(partition):
    settings, p = partition
    end = GARBAGE + 1200  # the committed offset: fix 1200 is the first the worker reads itself

    fixes = read_back(settings, p, end, span_s=30, max_records=100_000)
    assert seconds(fixes) == list(range(1200 - warmup.FIRST_CHUNK, 1200))


def test_history_reads_back_to_the_start_of_the_log_skipping_records_the_agent_refused(partition):
    settings, p = partition
    fixes = read_back(settings, p, GARBAGE + 1200, span_s=3600, max_records=100_000)
    assert seconds(fixes) == list(range(1200))


def test_history_reads_back_at_most_max_records(partition):
    settings, p = partition
    fixes = read_back(settings, p, GARBAGE + 1200, span_s=3600, max_records=700)
    assert seconds(fixes) == list(range(500, 1200))


def test_a_stream_is_quiet_where_its_records_are_idle_s_apart_or_the_last_is_idle_s_old():
    assert warmup.quiet_after([0.0, 1.0, 20.0, 21.0], then=22.0, idle_s=10) == [1]
    assert warmup.quiet_after([0.0, 1.0], then=11.0, idle_s=10) == [1]
    assert warmup.quiet_after([], then=5.0, idle_s=10) == []


def _replay_scenario(max_vehicles: int | None, cancel: bool) -> tuple[VehicleTracks, list[list]]:
    """A worker holding partition 1's vehicles replays partition 0's history, to its end or cancelled
    after its first step (a new rebalance); the positions it sends."""
    live = [f for f in fleet() if track_partition(f) == 1]
    taken_over = [f for f in fleet() if track_partition(f) == 0]
    tracks = VehicleTracks(load_network(), idle_s=IDLE_S, max_vehicles=max_vehicles)
    tracks.push_all(live, [1] * len(live))
    timed = [(f.ts.timestamp(), f) for f in taken_over]
    sent: list[list] = []

    async def send(points: list) -> None:
        sent.append(points)

    async def run() -> None:
        task = asyncio.create_task(warmup.replay(tracks, 0, timed, timed[-1][0] + 1, IDLE_S, send))
        if not cancel:
            await task
            return
        await asyncio.sleep(0)  # the replay runs its first step and yields to the loop
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    return tracks, sent


def test_a_replay_cut_short_by_a_new_rebalance_forgets_its_partition_and_sends_nothing():
    tracks, sent = _replay_scenario(max_vehicles=None, cancel=True)
    assert tracks.sources() == {1} and sent == []  # the next warm-up replays partition 0 afresh


def test_a_replay_done_at_the_vehicle_bound_sends_what_forgetting_the_oldest_commits():
    held = len({f.vehicle_id for f in fleet() if track_partition(f) == 1})
    tracks, sent = _replay_scenario(max_vehicles=held, cancel=False)
    assert tracks.forgotten > 0 and len(sent) == 1 and sent[0]
    assert {p.vehicle_id for p in sent[0]} <= {f.vehicle_id for f in fleet() if track_partition(f) == 1}


def _replayed_and_sent(then_after_last_s: float, resend_within_s: float = 60.0) -> tuple[list, list]:
    """An old owner read partition 0's fleet to its end and was killed there; its heir replays that
    history, records 0.1 s apart in Kafka time, the next record (or now) ``then_after_last_s`` after the
    last. What the old owner held pending, and what the heir sends."""
    fixes = [f for f in fleet() if track_partition(f) == 0]
    owner = VehicleTracks(load_network(), idle_s=IDLE_S)
    owner.push_all(fixes, [0] * len(fixes))
    pending = owner.flush_idle(0)  # what its idle commit would have sent, had it lived that long
    heir = VehicleTracks(load_network(), idle_s=IDLE_S)
    timed = [(i * 0.1, f) for i, f in enumerate(fixes)]
    then = timed[-1][0] + then_after_last_s
    sent: list[list] = []

    async def send(points: list) -> None:
        sent.append(points)

    asyncio.run(warmup.replay(heir, 0, timed, then, IDLE_S, send, resend_within_s))
    return pending, [p for points in sent for p in points]


def test_a_replay_ending_in_a_pause_sends_the_idle_commit_its_old_owner_may_not_have_lived_to_make():
    # Killed within idle_s of its last fix, after committing its offsets: only the heir can send them.
    pending, sent = _replayed_and_sent(then_after_last_s=IDLE_S + 1)
    assert pending and matched(sent) == matched(pending)


def test_a_replay_ending_mid_stream_sends_nothing_and_leaves_the_pending_fixes_to_the_live_ones():
    pending, sent = _replayed_and_sent(then_after_last_s=IDLE_S / 4)
    assert pending and sent == []


def test_a_replay_ending_in_a_pause_longer_than_the_windows_are_kept_sends_nothing():
    # Their windows may have expired: a window rebuilt from those fixes alone would replace its full row.
    pending, sent = _replayed_and_sent(then_after_last_s=120.0, resend_within_s=60.0)
    assert pending and sent == []
