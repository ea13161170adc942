"""Dead letters: a message that cannot be processed goes, whole and with its reason, to
``fleet.deadletter``; the worker carries on and the counter shows it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from fleetscope.errors import InvalidMessage
from streams import metrics, topics
from streams.schema import DeadLetter, Message, decode, utcnow

if TYPE_CHECKING:
    from faust.types import EventT

    from streams.runtime import Runtime

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)


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
    log.warning(
        "dead letter %s/%d@%d stage=%s reason=%s: %s", msg.topic, msg.partition, msg.offset, stage, reason, error[:300]
    )


async def decode_or_dead_letter(
    rt: "Runtime", event: "EventT", model: type[M], stage: str, check: Callable[[M, "EventT"], None] | None = None
) -> M | None:
    """The event's message, or None after dead-lettering it when it does not decode or ``check`` rejects it."""
    try:
        msg = decode(model, event.value)
        if check is not None:
            check(msg, event)
        return msg
    except InvalidMessage as exc:
        await dead_letter(rt, event, stage, exc.reason, exc.detail)
        return None


async def decode_batch(
    rt: "Runtime", events: Sequence["EventT"], model: type[M], stage: str
) -> tuple[list[M], list["EventT"]]:
    """Messages of a batch that decode, with their events; the others are dead-lettered."""
    messages, kept = [], []
    for event in events:
        msg = await decode_or_dead_letter(rt, event, model, stage)
        if msg is not None:
            messages.append(msg)
            kept.append(event)
    return messages, kept
