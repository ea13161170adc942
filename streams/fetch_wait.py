"""How long a worker's consumer lets the broker hold a fetch that finds no new records.

Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting to change it. On
the embedded broker (Tansu) a quiet pipeline paid for that wait on every Kafka hop: the 3-minute demo
measured p50 2.04 s and p99 2.76 s from frame to ``fleet.scenes`` with 1,500 ms, and 0.51 s and
1.00 s with 100 ms. A busy consumer is not slowed either way: its fetches find records at once. The
wait matters on any broker, so it is installed for every worker; ``install`` checks that Faust still
builds the consumer in the method it wraps (tests/streams/test_library_quirks.py pins the versions).
"""

from __future__ import annotations

import inspect
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

_create_worker_consumer = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer


def install(fetch_max_wait_ms: int) -> None:
    """Make the worker's consumers use ``fetch_max_wait_ms`` (call before the worker starts).

    Raises RuntimeError when Faust no longer has ``_create_worker_consumer(self, transport)``."""
    if list(inspect.signature(_create_worker_consumer).parameters) != ["self", "transport"]:
        raise RuntimeError(
            "faust's AIOKafkaConsumerThread._create_worker_consumer changed: streams/fetch_wait.py must be"
            " checked against this faust-streaming version"
        )

    def create(self: Any, transport: Any) -> Any:
        consumer = _create_worker_consumer(self, transport)
        consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read when the consumer starts its fetcher
        return consumer

    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]
