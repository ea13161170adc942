"""The library quirks fleetscope works around: each fix applies where its quirk does, and a library
upgrade that changes what a fix replaces fails here first (re-measure the quirk, then the versions)."""

from __future__ import annotations

import importlib.metadata

from faust.transport.drivers import aiokafka as faust_aiokafka

from core.settings import load_settings
from streams import changelog_recovery
from streams.app import create_app

# The versions the two fixes were measured on (streams/fetch_wait.py, streams/changelog_recovery.py).
MEASURED_ON = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


def test_the_libraries_are_the_versions_the_fixes_were_measured_on() -> None:
    installed = {name: importlib.metadata.version(name) for name in MEASURED_ON}
    assert installed == MEASURED_ON, "a dependency changed under a quirk fix: re-check both fixes, then update"


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
