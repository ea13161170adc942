"""The library quirks fleetscope works around: each fix applies where its quirk does, and a library
upgrade that changes what a fix replaces fails here first (re-measure the quirk, then the versions)."""

from __future__ import annotations

import importlib.metadata

from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka

from core.settings import load_settings
from streams import changelog_recovery, recovery_seek
from streams.app import create_app

# The versions the fixes were measured on (streams/fetch_wait.py, changelog_recovery.py, recovery_seek.py).
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
    assert recovery_seek.source_digest() == recovery_seek.MEASURED_SOURCE
    create_app(load_settings())
    assert Recovery.on_recovery_completed is recovery_seek.on_recovery_completed
