"""Dead letters: a message that cannot be processed goes, whole and with its reason, to
``fleet.deadletter``; the worker carries on and the counter shows it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from streams import metrics, topics
from streams.schema import DeadLetter, utcnow

if TYPE_CHECKING:
    from faust.types import EventT

    from streams.runtime import Runtime

log = logging.getLogger(__name__)


async def dead_letter(rt: "Runtime", event: "EventT", stage: str, reason: str, error: str) -> None:
    """Send the event's original message to the dead-letter topic with ``reason``."""
    msg = event.message
    key = msg.key.decode("utf-8", "replace") if isinstance(msg.key, bytes) else msg.key
    raw = msg.value if isinstance(msg.value, bytes) else str(msg.value).encode()
    letter = DeadLetter(
        source_topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=key,
        stage=stage,
        reason=reason,
        error=error[:2000],
        payload=raw,
        failed_at=utcnow(),
    )
    await rt.send(topics.DEADLETTER, msg.key, letter.encode())
    metrics.DEAD_LETTERS.labels(stage, reason).inc()
    log.warning("dead letter %s/%d@%d stage=%s reason=%s: %s", msg.topic, msg.partition, msg.offset, stage, reason, error[:300])
