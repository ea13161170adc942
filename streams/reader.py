"""Reading fleetscope topics from their beginning with kafka-python, outside any consumer group
(the demo's summary, the benchmarks, the tests): nothing is committed, so reading changes nothing."""

from __future__ import annotations

from kafka import KafkaConsumer

from core.settings import Settings


def topic_reader(settings: Settings, *topics: str) -> KafkaConsumer:
    """A consumer of the logical ``topics`` from their first record, fetching messages as large as topics allow."""
    return KafkaConsumer(
        *(settings.topic(t) for t in topics),
        bootstrap_servers=settings.kafka.servers.split(","),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        fetch_max_bytes=settings.kafka.max_message_bytes,
        max_partition_fetch_bytes=settings.kafka.max_message_bytes,
    )
