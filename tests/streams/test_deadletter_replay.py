"""Dead-letter replay remembers what it sent: on a real (embedded Tansu) broker, without the rest of the stack."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner

from core.settings import Settings
from fleetscope.cli import main
from infra.broker import EmbeddedBroker, ensure_topics
from records.messages import DeadLetter, utcnow
from streams import topics
from streams.deadletter_replay import (
    LetterFilter,
    ReplayedLetter,
    ReplayResult,
    StoredLetter,
    read_letters,
    replay,
)
from streams.producer import FleetProducer
from tests.conftest import stack_settings
from tests.kafka_reader import read_until


@pytest.fixture(scope="module")
def broker_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = stack_settings(tmp_path_factory.mktemp("replay"))
    broker = EmbeddedBroker(settings)
    try:
        broker.start()
        ensure_topics(settings)
        yield settings
    finally:
        broker.stop()


@pytest.fixture
def reason() -> str:
    """A reason no other test uses, so each test's filter takes only its own letters."""
    return f"test_{uuid.uuid4().hex[:10]}"


def write_letters(settings: Settings, reason: str, stage: str, n: int) -> list[DeadLetter]:
    """``n`` dead letters whose originals are unique GPS payloads (no worker runs: nothing consumes them)."""
    source = settings.topic(topics.GPS)
    letters = [
        DeadLetter(
            source_topic=source,
            partition=0,
            offset=i,
            key=f"vehicle-{i}",
            stage=stage,
            reason=reason,
            error="test",
            payload=f"{reason}/{stage}/{uuid.uuid4().hex}".encode(),
            failed_at=utcnow(),
        )
        for i in range(n)
    ]
    with FleetProducer(settings) as producer:
        for letter in letters:
            producer.send_raw(topics.DEADLETTER, letter.key, letter.encode())
    return letters


def chosen(settings: Settings, *, reason: str, stage: str | None = None) -> list[StoredLetter]:
    take = LetterFilter(reason=reason, stage=stage)
    return [x for x in read_letters(settings) if take(x.letter)]


def originals_on_source(settings: Settings, reason: str, count: int) -> Counter[bytes]:
    """How often each of this test's originals is on the source topic (waits for ``count``, then for quiet)."""
    found = read_until(settings, topics.GPS, lambda r: r.value.startswith(reason.encode()), count, 60, settle_s=1.5)
    return Counter(r.value for r in found)


def test_a_second_replay_sends_nothing_and_the_next_takes_only_new_letters(broker_settings, reason):
    settings = broker_settings
    first = write_letters(settings, reason, "inference", 3)
    letters = chosen(settings, reason=reason)
    assert [x.letter for x in letters] == first and not any(x.replayed for x in letters)

    assert replay(settings, letters) == ReplayResult(sent=3, skipped=0)
    again = chosen(settings, reason=reason)
    assert all(x.replayed for x in again)
    assert replay(settings, again) == ReplayResult(sent=0, skipped=3)
    assert originals_on_source(settings, reason, 3) == Counter({x.payload: 1 for x in first})

    (new,) = write_letters(settings, reason, "inference", 1)
    letters = chosen(settings, reason=reason)
    assert [x.letter for x in letters if not x.replayed] == [new]
    assert replay(settings, letters) == ReplayResult(sent=1, skipped=3)
    assert originals_on_source(settings, reason, 4) == Counter({x.payload: 1 for x in [*first, new]})


def test_a_letter_left_out_by_one_runs_filter_is_replayed_by_a_later_run_that_takes_it(broker_settings, reason):
    settings = broker_settings
    (inference,) = write_letters(settings, reason, "inference", 1)
    (fusion,) = write_letters(settings, reason, "fusion", 1)

    assert replay(settings, chosen(settings, reason=reason, stage="inference")) == ReplayResult(sent=1, skipped=0)
    assert replay(settings, chosen(settings, reason=reason)) == ReplayResult(sent=1, skipped=1)
    assert replay(settings, chosen(settings, reason=reason)) == ReplayResult(sent=0, skipped=2)
    assert originals_on_source(settings, reason, 2) == Counter({inference.payload: 1, fusion.payload: 1})


def test_the_commands_say_how_many_letters_were_already_replayed(broker_settings, reason):
    settings = broker_settings
    write_letters(settings, reason, "inference", 2)
    replay(settings, chosen(settings, reason=reason)[:1])
    env = {"FLEETSCOPE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.servers}
    runner = CliRunner()

    listed = runner.invoke(main, ["dead-letters", "list", "--reason", reason], env=env)
    assert listed.exit_code == 0, listed.output
    assert f"2 dead letters on {settings.topic(topics.DEADLETTER)}, 1 already replayed" in listed.output
    assert f"inference        {reason:<24} 2 (1 replayed)" in listed.output

    dry = runner.invoke(main, ["dead-letters", "replay", "--reason", reason, "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert dry.output.strip() == "would replay 1 dead letter; 1 skipped as already replayed"

    done = runner.invoke(main, ["dead-letters", "replay", "--reason", reason], env=env)
    assert done.exit_code == 0, done.output
    assert done.output.strip() == "replayed 1 dead letter to their source topics; 1 skipped as already replayed"
    assert all(x.replayed for x in chosen(settings, reason=reason))


def test_a_record_of_another_letter_at_the_same_position_does_not_count():
    """A dead-letter topic deleted and recreated starts its offsets again: old records must not match new letters."""
    letter = DeadLetter(
        source_topic="fleet.gps",
        partition=1,
        offset=7,
        key=None,
        stage="ingest",
        reason="not_json",
        error="x",
        payload=b"{",
        failed_at=utcnow(),
    )
    record = StoredLetter(0, 5, letter).record()
    assert isinstance(record, ReplayedLetter) and record.describes(letter)
    assert not record.describes(letter.model_copy(update={"offset": 8}))
    assert not record.describes(letter.model_copy(update={"failed_at": letter.failed_at + timedelta(seconds=1)}))
