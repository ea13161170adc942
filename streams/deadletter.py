"""Dead letters: a message that cannot be processed goes, whole and with its reason, to
``fleet.deadletter``; the worker carries on and the counter shows it.

Two kinds of reason: the input's fault (``InvalidMessage``: not JSON, a bad field, an implausible
time), found where a message is decoded, and ``processing_error``: an exception a stage raised while
handling a message that decoded. Each agent handles a failing batch again message by message
(``one_by_one``), so only the message at fault is dead-lettered and the rest of its batch goes on.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from core.errors import InvalidMessage
from records.messages import DeadLetter, Frame, GpsFix, Message, parse, utcnow
from streams import metrics, topics

if TYPE_CHECKING:
    from faust.types import EventT

    from streams.ingest.admission import Admission
    from streams.runtime import Runtime

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)
T = TypeVar("T")
F = TypeVar("F", Frame, GpsFix)
LETTER_OVERHEAD = 32 * 1024  # bytes of a letter besides its base64 payload (key and error capped, JSON escapes)
MAX_LETTER_KEY = 256  # characters of a message's key kept in its letter (vehicle ids are at most 128)


async def dead_letter(rt: "Runtime", event: "EventT", stage: str, reason: str, error: str) -> None:
    """Send the event's original message to the dead-letter topic with ``reason``."""
    msg = event.message
    key = msg.key.decode("utf-8", "replace") if isinstance(msg.key, bytes) else msg.key
    raw = msg.value if isinstance(msg.value, bytes) else str(msg.value).encode()
    if len(raw) * 4 // 3 + LETTER_OVERHEAD > rt.settings.kafka.max_message_bytes:
        # Base64 inside a letter would exceed the broker's limit, and a failed send would stop the agent.
        at = f"{msg.topic}[{msg.partition}]@{msg.offset}"
        error = f"[the original's {len(raw)} bytes are left out of this letter; read them at {at}] {error}"
        raw = b""
    if key is not None and len(key) > MAX_LETTER_KEY:  # a hostile key is sent twice: as the key and in the letter
        key = key[:MAX_LETTER_KEY]
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
    await rt.send(topics.DEADLETTER, key, letter.encode())
    metrics.DEAD_LETTERS.labels(stage, reason).inc()
    log.warning(
        "dead letter %s/%d@%d stage=%s reason=%s: %s", msg.topic, msg.partition, msg.offset, stage, reason, error[:300]
    )


_unknown_labels: set[tuple[str, str]] = set()
MAX_UNKNOWN_LABELS = 200  # distinct (topic, field) label pairs; a producer sending random names must not grow memory


def count_unknown(topic: str, fields: Sequence[str]) -> None:
    """Count the unknown fields a message carried, per topic and field (bounded label set)."""
    for name in fields:
        label = (topic, name[:80])
        if label not in _unknown_labels:
            if len(_unknown_labels) >= MAX_UNKNOWN_LABELS:
                label = (topic, "(other)")
            else:
                _unknown_labels.add(label)
                log.warning("%s messages carry a field this worker does not know: %s (ignored)", topic, label[1])
        metrics.UNKNOWN_FIELDS.labels(*label).inc()


async def decode_or_dead_letter(
    rt: "Runtime", event: "EventT", model: type[M], stage: str, check: Callable[[M, "EventT"], None] | None = None
) -> M | None:
    """The event's message, or None after dead-lettering it when it does not decode or ``check`` rejects it."""
    async with dead_letter_on_error(rt, event, stage):
        parsed = parse(model, event.value)
        if check is not None:
            check(parsed.message, event)
        count_unknown(event.message.topic, parsed.unknown_fields)
        return parsed.message
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


async def admit_or_dead_letter(
    rt: "Runtime", event: "EventT", model: type[F], admission: "Admission", stage: str = "ingest"
) -> F | None:
    """The fleet message of ``event`` if ``admission`` admits it, else None after dead-lettering it."""
    async with dead_letter_on_error(rt, event, stage):
        parsed = admission.admit(model, event.value, event.key, event.message.timestamp)
        count_unknown(event.message.topic, parsed.unknown_fields)
        return parsed.message
    return None


def describe(exc: BaseException) -> str:
    """An exception as a dead letter's error: its type, message and where it was raised."""
    where = traceback.extract_tb(exc.__traceback__)[-3:]
    return f"{type(exc).__name__}: {exc} (at " + " <- ".join(f"{f.filename}:{f.lineno}" for f in reversed(where)) + ")"


@asynccontextmanager
async def dead_letter_on_error(rt: "Runtime", event: "EventT", stage: str) -> AsyncIterator[None]:
    """Dead-letter ``event`` if handling it raises, the agent going on: with the reason of an
    ``InvalidMessage`` (the input's fault), else as ``processing_error`` with the exception."""
    try:
        with rt.handling():
            yield
    except InvalidMessage as exc:
        await dead_letter(rt, event, stage, exc.reason, exc.detail)
    except Exception as exc:
        msg = event.message
        log.exception("%s failed on %s/%d@%d", stage, msg.topic, msg.partition, msg.offset)
        await dead_letter(rt, event, stage, "processing_error", describe(exc))


async def one_by_one(
    rt: "Runtime",
    stage: str,
    items: Sequence[tuple["EventT", T]],
    handle: Callable[[Sequence[tuple["EventT", T]]], Awaitable[None]],
) -> None:
    """``handle(items)``; if it raises, ``handle`` each item alone, dead-lettering those that still fail.

    ``handle`` must be safe to repeat for items a failed batch had already handled (the sinks upsert;
    the windows and tracks take a message twice as once).
    """
    try:
        with rt.handling():
            await handle(items)
        return
    except Exception as exc:
        if len(items) == 1:
            log.exception("%s failed on one message", stage)
            await dead_letter(rt, items[0][0], stage, "processing_error", describe(exc))
            return
        log.warning("%s failed on a batch of %d (%s); handling it message by message", stage, len(items), exc)
    for item in items:
        async with dead_letter_on_error(rt, item[0], stage):
            await handle([item])
