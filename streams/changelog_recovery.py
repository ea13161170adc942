"""Exact changelog ends for Faust's table recovery, whatever the broker reports as the end offset.

Tansu (the embedded broker) answers ListOffsets(latest) with the start of the last record batch + 1,
not the log end. Faust recovers a table by reading its changelog up to that offset, so the rest of the
last batch was never applied: after a restart or rebalance a segment window lost its newest fixes
(measured: 1-4 of 20,000 updates per recovery). This reads each changelog partition on from the
reported end, with a throwaway consumer that connects as the worker's own consumers do
(``streams.side_consumer``), and returns the true end. It is installed for the embedded
broker only, unless told otherwise: Apache Kafka reports the true end. ``install`` checks that Faust
still has the method it replaces, with the signature it was written against
(tests/streams/test_library_quirks.py pins the versions it was measured on).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.side_consumer import side_consumer

log = logging.getLogger(__name__)
READ_TIMEOUT_S = 10.0
_reported_highwaters = faust_aiokafka.AIOKafkaConsumerThread._highwaters


async def _exact_highwaters(self: Any, partitions: list[TP]) -> Mapping[TP, int]:
    ends = dict(await _reported_highwaters(self, partitions))
    todo = {tp: end for tp, end in ends.items() if end}
    if not todo:
        return ends
    reader = side_consumer(self.consumer.app)
    await reader.start()
    try:
        tps = {tp: aiokafka.TopicPartition(tp.topic, tp.partition) for tp in todo}
        reader.assign(list(tps.values()))
        for tp, end in todo.items():
            reader.seek(tps[tp], end - 1)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while time.monotonic() < deadline and await reader.getmany(*tps.values(), timeout_ms=300):
            pass  # read until nothing more comes: each position is then the true end
        for tp, ktp in tps.items():
            true_end = await reader.position(ktp)
            if true_end > ends[tp]:
                log.info("changelog %s[%d]: end %d, broker reported %d", tp.topic, tp.partition, true_end, ends[tp])
                ends[tp] = true_end
    finally:
        await reader.stop()
    return ends


def install() -> None:
    """Make Faust's recovery use the exact ends (idempotent; call before the worker starts).

    Raises RuntimeError when Faust no longer has the coroutine ``_highwaters(self, partitions)``."""
    if not inspect.iscoroutinefunction(_reported_highwaters) or list(
        inspect.signature(_reported_highwaters).parameters
    ) != ["self", "partitions"]:
        raise RuntimeError(
            "faust's AIOKafkaConsumerThread._highwaters changed: streams/changelog_recovery.py must be checked"
            " against this faust-streaming version before the embedded broker is used"
        )
    faust_aiokafka.AIOKafkaConsumerThread._highwaters = _exact_highwaters  # type: ignore[method-assign]
