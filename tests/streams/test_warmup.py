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
from streams import topics
from streams.app import create_app
from streams.context import warmup
from streams.ingest.admission import Admission
from streams.producer import FleetProducer
from streams.side_consumer import side_consumer

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
