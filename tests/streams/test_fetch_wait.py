"""The worker's Kafka consumers use the configured fetch wait, not Faust's fixed 1,500 ms."""

from __future__ import annotations

import asyncio

from core.settings import load_settings
from streams.app import create_app


def test_the_consumer_faust_builds_for_the_worker_uses_the_configured_fetch_wait():
    async def built_consumer_wait(fetch_max_wait_ms: int) -> int:
        rt = create_app(load_settings(kafka={"fetch_max_wait_ms": fetch_max_wait_ms}))
        consumer = rt.app.consumer._thread._create_worker_consumer(rt.app.transport)  # what Faust starts
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    assert asyncio.run(built_consumer_wait(250)) == 250
    assert asyncio.run(built_consumer_wait(1500)) == 1500
