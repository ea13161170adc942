"""Look at dead letters and send them back through the stage that failed them.

A dead letter (``streams.deadletter``) keeps the original message whole with its source topic, key,
stage and reason. Once the cause is fixed (Triton back, a rule or schema corrected), ``replay`` sends
each chosen letter's original bytes to its source topic with its original key: the stage processes
it again, and its sinks upsert, so a frame already stored is not stored twice. A letter whose cause
remains fails again and comes back as a new letter.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from kafka import KafkaConsumer, TopicPartition

from fleetscope.errors import FleetscopeError
from fleetscope.settings import Settings
from streams import topics
from streams.producer import FleetProducer
from streams.schema import DeadLetter, decode

QUIET_S = 1.0  # the broker may report an end offset before the last records (Tansu): read on until quiet


@dataclass(frozen=True)
class LetterFilter:
    """Which dead letters to take; an unset field takes all."""

    stage: str | None = None
    reason: str | None = None
    since: datetime | None = None

    def __call__(self, letter: DeadLetter) -> bool:
        return (
            (self.stage is None or letter.stage == self.stage)
            and (self.reason is None or letter.reason == self.reason)
            and (self.since is None or letter.failed_at >= self.since)
        )


def read_letters(settings: Settings, timeout_s: float = 30.0) -> list[DeadLetter]:
    """Every dead letter on the topic now, oldest first per partition (bounded by ``timeout_s``)."""
    name = settings.topic(topics.DEADLETTER)
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka.servers.split(","),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_bytes=settings.kafka.max_message_bytes,
            max_partition_fetch_bytes=settings.kafka.max_message_bytes,
            request_timeout_ms=int(timeout_s * 1000) + 1000,
        )
    except Exception as exc:
        raise FleetscopeError(f"cannot reach Kafka at {settings.kafka.servers} ({exc}); is the stack up?") from exc
    try:
        partitions = consumer.partitions_for_topic(name)
        if not partitions:
            raise FleetscopeError(f"topic {name} does not exist on {settings.kafka.servers}; run `fleetscope topics`")
        tps = [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        letters: list[DeadLetter] = []
        deadline, quiet_since = time.monotonic() + timeout_s, time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            for records in batch.values():
                letters += [decode(DeadLetter, r.value) for r in records]
            if batch:
                quiet_since = time.monotonic()
            reached = all(consumer.position(tp) >= ends[tp] for tp in tps)
            if reached and time.monotonic() - quiet_since >= QUIET_S:
                return letters
        raise FleetscopeError(f"reading {name} did not finish within {timeout_s:g} s ({len(letters)} letters read)")
    finally:
        consumer.close()


def summary(letters: Iterable[DeadLetter]) -> Counter[tuple[str, str]]:
    """Number of letters per (stage, reason)."""
    return Counter((letter.stage, letter.reason) for letter in letters)


def replay(settings: Settings, letters: Iterable[DeadLetter]) -> int:
    """Send each letter's original message back to its source topic with its key; returns how many were sent."""
    with FleetProducer(settings) as producer:
        for letter in letters:
            producer.send_to(letter.source_topic, letter.key, letter.payload)
        producer.flush()
        return sum(producer.sent.values())
