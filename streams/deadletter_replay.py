"""Look at dead letters and send them back through the stage that failed them, each once.

A dead letter (``streams.deadletter``) keeps the original message whole with its source topic, key,
stage and reason. Once the cause is fixed (Triton back, a rule or schema corrected), ``replay`` sends
each chosen letter's original bytes to its source topic with its original key: the stage processes
it again, and its sinks upsert, so a frame already stored is not stored twice. A letter whose cause
remains fails again and comes back as a new letter (at a new position, so a later replay takes it).

Replay remembers what it sent on ``fleet.deadletter.replayed``: one small record per replayed letter,
keyed by the letter's own position on the dead-letter topic (partition and offset). A consumer-group
offset would not do: replays are chosen by filters, and a committed offset would skip, forever, the
letters an earlier run's filter left out. ``read_letters`` reads both topics and marks the letters
already replayed; ``replay`` skips those. So running a replay twice sends nothing twice, letters
written since are taken by the next run, and a letter left out by one run's filter is taken by a
later run whose filter matches it.

Delivery is at least once: the records are written only after the originals were acknowledged by
the broker, so a crash (or a second replay running at the same time) between sending and recording
can send a letter twice. The sinks upsert, so that costs work, not duplicates.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from pydantic import AwareDatetime

from core.errors import FleetscopeError
from core.settings import Settings
from records.messages import DeadLetter, Message, decode, utcnow
from streams import topics

QUIET_S = 1.0  # the broker may report an end offset before the last records (Tansu): read on until quiet
SEND_TIMEOUT_S = 60.0


class ReplayedLetter(Message):
    """``fleet.deadletter.replayed``: the dead letter at ``deadletter_partition``/``deadletter_offset``
    was sent back to its source topic. The letter's source position and failure time are kept too, so
    a record never matches a different letter at the same position (a dead-letter topic recreated)."""

    deadletter_partition: int
    deadletter_offset: int
    source_topic: str
    source_partition: int
    source_offset: int
    failed_at: AwareDatetime
    replayed_at: AwareDatetime

    def describes(self, letter: DeadLetter) -> bool:
        """Whether this record is of ``letter`` (found at the record's position)."""
        return (self.source_topic, self.source_partition, self.source_offset, self.failed_at) == (
            letter.source_topic,
            letter.partition,
            letter.offset,
            letter.failed_at,
        )


@dataclass(frozen=True)
class StoredLetter:
    """A dead letter, where it is on the dead-letter topic, and whether a replay already sent it."""

    partition: int
    offset: int
    letter: DeadLetter
    replayed: bool = False

    @property
    def position(self) -> tuple[int, int]:
        return (self.partition, self.offset)

    def record(self) -> ReplayedLetter:
        """The record that says this letter was replayed (now)."""
        return ReplayedLetter(
            deadletter_partition=self.partition,
            deadletter_offset=self.offset,
            source_topic=self.letter.source_topic,
            source_partition=self.letter.partition,
            source_offset=self.letter.offset,
            failed_at=self.letter.failed_at,
            replayed_at=utcnow(),
        )


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


@dataclass(frozen=True)
class ReplayResult:
    sent: int  # letters sent back to their source topics (and recorded as replayed)
    skipped: int  # letters left out because an earlier replay sent them


def read_letters(settings: Settings, timeout_s: float = 30.0) -> list[StoredLetter]:
    """Every dead letter on the topic now, oldest first per partition, each marked whether it was
    already replayed (both topics read in one pass, bounded by ``timeout_s``)."""
    letters_topic = settings.topic(topics.DEADLETTER)
    replayed_topic = settings.topic(topics.DEADLETTER_REPLAYED)
    records = _read_topics(settings, (letters_topic, replayed_topic), timeout_s)
    replayed: dict[tuple[int, int], ReplayedLetter] = {}
    for r in records[replayed_topic]:
        record = decode(ReplayedLetter, r.value)
        replayed[(record.deadletter_partition, record.deadletter_offset)] = record
    letters = []
    for r in records[letters_topic]:
        letter = decode(DeadLetter, r.value)
        done = replayed.get((r.partition, r.offset))
        letters.append(StoredLetter(r.partition, r.offset, letter, done is not None and done.describes(letter)))
    return letters


def _read_topics(settings: Settings, names: Sequence[str], timeout_s: float) -> dict[str, list[Any]]:
    """Every record of the topics ``names`` now, by topic, oldest first per partition."""
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
        tps = []
        for name in names:
            partitions = consumer.partitions_for_topic(name)
            if not partitions:
                raise FleetscopeError(
                    f"topic {name} does not exist on {settings.kafka.servers}; run `fleetscope topics`"
                )
            tps += [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)  # a lower bound only on Tansu: hence the quiet period below
        found: dict[str, list[Any]] = {name: [] for name in names}
        deadline, quiet_since = time.monotonic() + timeout_s, time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            for tp, records in batch.items():
                found[tp.topic] += records
            if batch:
                quiet_since = time.monotonic()
            reached = all(consumer.position(tp) >= ends[tp] for tp in tps)
            if reached and time.monotonic() - quiet_since >= QUIET_S:
                return found
        counts = ", ".join(f"{len(found[n])} records of {n}" for n in names)
        raise FleetscopeError(f"reading {' and '.join(names)} did not finish within {timeout_s:g} s ({counts} read)")
    finally:
        consumer.close()


def summary(letters: Iterable[DeadLetter]) -> Counter[tuple[str, str]]:
    """Number of letters per (stage, reason)."""
    return Counter((letter.stage, letter.reason) for letter in letters)


def replay(settings: Settings, letters: Iterable[StoredLetter]) -> ReplayResult:
    """Send each letter not yet replayed back to its source topic with its key, then record it as replayed.

    The records are written only once the broker acknowledged the originals; a letter whose send
    failed is not recorded (the next replay takes it) and the call then raises ``FleetscopeError``.
    """
    todo: dict[tuple[int, int], StoredLetter] = {}
    skipped = 0
    for stored in letters:
        # A letter whose original was too large to carry has nothing to send: it names where the original is.
        if stored.replayed or not stored.letter.payload:
            skipped += 1
        else:
            todo.setdefault(stored.position, stored)
    if not todo:
        return ReplayResult(sent=0, skipped=skipped)
    replayed_topic = settings.topic(topics.DEADLETTER_REPLAYED)
    producer = _producer(settings)
    try:
        sent, errors = _send_all(
            producer, [(s, s.letter.source_topic, _key(s.letter.key), s.letter.payload) for s in todo.values()]
        )
        recorded, record_errors = _send_all(
            producer, [(s, replayed_topic, f"{s.partition}:{s.offset}".encode(), s.record().encode()) for s in sent]
        )
    finally:
        producer.close(timeout=10)
    if errors or record_errors:
        raise FleetscopeError(
            f"replay incomplete: {len(sent)} of {len(todo)} letters sent, {len(recorded)} recorded as replayed"
            f" ({(errors + record_errors)[0]}); replay again to send the rest"
        )
    return ReplayResult(sent=len(sent), skipped=skipped)


def _producer(settings: Settings) -> Any:
    # Not FleetProducer: replay must know each send's outcome before recording it, and
    # FleetProducer.send_to drops the send's future.
    try:
        return KafkaProducer(
            bootstrap_servers=settings.kafka.servers.split(","),
            client_id="fleetscope-replay",
            acks="all",
            linger_ms=5,
            max_request_size=settings.kafka.max_message_bytes,
        )
    except KafkaError as exc:
        raise FleetscopeError(f"cannot reach Kafka at {settings.kafka.servers} ({exc}); is the stack up?") from exc


def _send_all(
    producer: Any, messages: list[tuple[StoredLetter, str, bytes | None, bytes]]
) -> tuple[list[StoredLetter], list[str]]:
    """Send (letter, topic, key, value) messages; return the letters whose message the broker
    acknowledged, and the errors of the others."""
    pending = []
    errors = []
    for stored, topic, key, value in messages:
        try:
            pending.append((stored, topic, producer.send(topic, key=key, value=value)))
        except KafkaError as exc:  # e.g. the topic does not exist: no metadata within max_block_ms
            errors.append(f"dead letter {stored.partition}@{stored.offset} to {topic}: {exc}")
    with contextlib.suppress(KafkaError):
        producer.flush(timeout=SEND_TIMEOUT_S)  # a send not done by then fails below
    done = []
    for stored, topic, future in pending:
        try:
            future.get(timeout=1)
            done.append(stored)
        except KafkaError as exc:
            errors.append(f"dead letter {stored.partition}@{stored.offset} to {topic}: {exc}")
    return done, errors


def _key(key: str | None) -> bytes | None:
    return key.encode() if key is not None else None
