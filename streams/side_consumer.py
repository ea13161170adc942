"""A throwaway aiokafka consumer that connects as the worker's own consumers do (the same servers,
client id, request timeout, credentials and TLS context), for reads beside Faust's: a changelog's
true end (``streams.changelog_recovery``), a partition's history before its committed offset
(``streams.context.warmup``). It never joins a group and never commits."""

from __future__ import annotations

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import AppT


def side_consumer(app: AppT, group_id: str | None = None) -> aiokafka.AIOKafkaConsumer:
    """An unstarted consumer for manually assigned partitions; ``group_id`` only to read its committed offsets."""
    conf = app.conf
    return aiokafka.AIOKafkaConsumer(
        bootstrap_servers=[f"{url.host}:{url.port or 9092}" for url in conf.broker],
        client_id=conf.broker_client_id,
        request_timeout_ms=int(conf.broker_request_timeout * 1000.0),
        group_id=group_id,
        enable_auto_commit=False,
        max_partition_fetch_bytes=conf.consumer_max_fetch_size,
        **faust_aiokafka.credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context),
    )
