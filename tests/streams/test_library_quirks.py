"""The library quirks fleetscope works around: each fix applies where its quirk does, and a library
upgrade that changes what a fix replaces fails here first (re-measure the quirk, then the versions)."""

from __future__ import annotations

import asyncio
import importlib.metadata
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.producer import ProducerBuffer
from faust.types import TP

from core.settings import load_settings
from streams import changelog_flush, changelog_recovery, fetch_partitions, recovery_seek
from streams.app import create_app
from streams.library_source import require_measured, source_digest

# The versions the fixes were measured on (streams/fetch_wait.py, fetch_partitions.py, changelog_recovery.py,
# recovery_seek.py, changelog_flush.py).
MEASURED_ON = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


def test_the_libraries_are_the_versions_the_fixes_were_measured_on() -> None:
    installed = {name: importlib.metadata.version(name) for name in MEASURED_ON}
    assert installed == MEASURED_ON, "a dependency changed under a quirk fix: re-check each fix, then update"


def test_the_changelog_end_fix_is_installed_for_the_embedded_broker_unless_told_otherwise(monkeypatch) -> None:
    thread = faust_aiokafka.AIOKafkaConsumerThread
    monkeypatch.setattr(thread, "_highwaters", changelog_recovery._reported_highwaters)
    create_app(load_settings(kafka={"bootstrap_servers": "kafka.example:9092"}))
    assert thread._highwaters is changelog_recovery._reported_highwaters
    create_app(load_settings())
    assert thread._highwaters is changelog_recovery._exact_highwaters
    monkeypatch.setattr(thread, "_highwaters", changelog_recovery._reported_highwaters)
    create_app(load_settings(kafka={"bootstrap_servers": "tansu.example:9092", "exact_changelog_ends": True}))
    assert thread._highwaters is changelog_recovery._exact_highwaters


def test_the_recovery_seek_fix_replaces_the_method_it_was_written_against() -> None:
    # A changed method may have fixed the order, or changed what the copy must keep: read it again.
    assert source_digest(recovery_seek._original) == recovery_seek.MEASURED_SOURCE
    create_app(load_settings())
    assert Recovery.on_recovery_completed is recovery_seek.on_recovery_completed


def test_the_fetch_partitions_fix_wraps_the_method_it_was_written_against() -> None:
    # A changed method may copy the set itself, or fetch another way: read it again.
    assert source_digest(fetch_partitions._getmany) == fetch_partitions.MEASURED_SOURCE
    create_app(load_settings())
    assert faust_aiokafka.AIOKafkaConsumerThread.getmany is fetch_partitions.getmany


class FetchingThread:
    """Faust's consumer thread as far as its fetch needs: the fetch waits until ``release`` is set."""

    def __init__(self) -> None:
        self.asked: list[Any] = []
        self.release = asyncio.Event()

    _fetch_records = None  # what the thread would run; call_thread stands in for it

    def _ensure_consumer(self) -> Any:
        return SimpleNamespace(_max_poll_records=10)

    async def call_thread(self, method: Any, consumer: Any, partitions: Any, **kwargs: Any) -> dict:
        await self.release.wait()
        self.asked.append(set(partitions))
        return {}


def test_a_fetch_reads_the_partitions_active_when_it_began_and_none_for_an_empty_set() -> None:
    async def scenario() -> None:
        thread, active = FetchingThread(), {"fleet.frames[0]", "changelog[0]"}
        fetch = asyncio.ensure_future(fetch_partitions.getmany(thread, active, 1.0))
        await asyncio.sleep(0)
        active.clear()  # Faust pauses partitions in this very set while the fetch waits
        assert not await fetch_partitions.IN_FLIGHT.settled(0.05), "the fetch has not returned"
        thread.release.set()
        assert await fetch_partitions.IN_FLIGHT.settled(1.0)
        await fetch
        assert thread.asked == [{"fleet.frames[0]", "changelog[0]"}]
        assert await fetch_partitions.getmany(thread, set(), 1.0) == {}
        assert thread.asked == [{"fleet.frames[0]", "changelog[0]"}], "an empty set fetches nothing"

    asyncio.run(scenario())


def test_the_changelog_end_reader_connects_with_the_workers_credentials(monkeypatch) -> None:
    app = create_app(load_settings()).app
    app.conf.broker_credentials = faust.SASLCredentials(username="fleet", password="secret")
    built: list[dict[str, Any]] = []

    class Refused(Exception):
        pass

    def consumer(**kwargs: Any) -> None:
        built.append(kwargs)
        raise Refused  # what it was built with is all this test needs

    async def reported(self: Any, partitions: list[TP]) -> dict[TP, int]:
        return {tp: 3 for tp in partitions}

    monkeypatch.setattr(changelog_recovery, "_reported_highwaters", reported)
    monkeypatch.setattr(changelog_recovery.aiokafka, "AIOKafkaConsumer", consumer)
    thread = SimpleNamespace(consumer=SimpleNamespace(app=app))
    with pytest.raises(Refused):
        asyncio.run(changelog_recovery._exact_highwaters(thread, [TP("fleetscope-segment-windows-changelog", 0)]))
    assert built[0]["sasl_plain_username"] == "fleet" and built[0]["sasl_plain_password"] == "secret"
    assert built[0]["security_protocol"] == "SASL_PLAINTEXT"


def test_a_fix_refuses_to_install_over_code_it_was_not_measured_on() -> None:
    with pytest.raises(RuntimeError, match=r"faust's Recovery\.on_recovery_completed changed: streams/x\.py must be"):
        require_measured(recovery_seek._original, "0" * 64, "streams/x.py", "still the same?")
    require_measured(recovery_seek._original, recovery_seek.MEASURED_SOURCE, "streams/x.py", "still the same?")


class SlowBuffer(ProducerBuffer):
    """A producer buffer whose driver takes 0.3 s to take each record, as a busy worker's can."""

    async def _send_pending(self, fut: Any) -> None:
        await asyncio.sleep(0.3)


def records_left_after(flush: Any) -> int:
    async def scenario() -> int:
        buffer = SlowBuffer()
        buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False, broker_request_timeout=5.0))
        await buffer.start()
        for _ in range(3):
            buffer.put(SimpleNamespace())
        await flush(buffer)
        left = buffer.size
        while not buffer.pending.empty():  # so that stopping the buffer does not flush again
            buffer.pending.get_nowait()
        await buffer.stop()
        return left

    return asyncio.run(scenario())


def test_faust_commits_offsets_after_a_flush_that_leaves_table_records_in_the_buffer() -> None:
    # The quirk: Faust's flush gives up after 0.1 s without a record handed over.
    assert records_left_after(changelog_flush._replaced) > 0
    assert records_left_after(changelog_flush.flush) == 0
    create_app(load_settings())
    assert ProducerBuffer.flush is changelog_flush.flush, "the worker installs the draining flush"
