"""What every agent shares at run time: settings, the Faust app, its topics, a counted send, the
health of the services the worker needs, and the agent decorator that counts crashes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import faust

from core.settings import Settings
from streams import metrics
from streams.context.gps_track import RecentFixes
from streams.health import Dependency
from streams.liveness import StallWatch

log = logging.getLogger(__name__)
AgentFun = Callable[[Any], Awaitable[None]]


@dataclass
class Runtime:
    """Settings, Faust app and raw-bytes topic handles, by logical topic name."""

    settings: Settings
    app: faust.App
    gps: RecentFixes
    topics: dict[str, Any] = field(default_factory=dict)
    read_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    consumed: set[str] = field(default_factory=set)  # full names of the topics agents read
    triton: Dependency = field(default_factory=lambda: Dependency("triton"))
    postgres: Dependency = field(default_factory=lambda: Dependency("postgres"))
    stalls: StallWatch = field(default_factory=lambda: StallWatch(0))
    stopping: bool = False  # the worker is stopping itself (``streams.liveness``)
    in_flight: int = 0  # messages or batches a stage is handling now (a slow stage is not a stalled consumer)

    def topic(self, name: str) -> Any:
        """The Faust topic for a logical name from ``streams.topics`` (raw bytes in and out)."""
        if name not in self.topics:
            self.topics[name] = self.app.topic(
                self.settings.topic(name),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=self.settings.kafka.partitions,
            )
        return self.topics[name]

    def agent(self, topic: str, name: str, **options: Any) -> Callable[[AgentFun], Any]:
        """``app.agent`` on a logical topic, counting the agent's starts and crashes.

        Stages handle their own errors message by message (``streams.deadletter.one_by_one``), so a
        crash means a bug in that handling; Faust restarts the agent and the counter shows it.
        """
        self.consumed.add(self.settings.topic(topic))

        def register(fun: AgentFun) -> Any:
            async def counted(stream: Any) -> None:
                metrics.AGENT_STARTS.labels(name).inc()
                try:
                    await fun(stream)
                except Exception:
                    metrics.AGENT_CRASHES.labels(name).inc()
                    log.exception("agent %s crashed; Faust restarts it", name)
                    raise

            counted.__qualname__ = fun.__qualname__
            return self.app.agent(self.topic(topic), name=name, **options)(counted)

        return register

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """Mark a stage at work on a message or batch while the block runs."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def send(self, name: str, key: bytes | str | None, value: bytes) -> None:
        """Produce one message and count it."""
        if isinstance(key, str):
            key = key.encode()
        await self.topic(name).send(key=key, value=value)
        metrics.MESSAGES_OUT.labels(self.settings.topic(name)).inc()

    def received(self, name: str, *events: Any) -> None:
        """Count consumed events and remember the highest offset read per partition (for consumer lag).

        The highest, not the latest: concurrent actors of one agent finish their events out of order.
        """
        metrics.MESSAGES_IN.labels(self.settings.topic(name)).inc(len(events))
        for event in events:
            msg = event.message
            key = (msg.topic, msg.partition)
            if msg.offset > self.read_offsets.get(key, -1):
                self.read_offsets[key] = msg.offset

    async def reading(self, tp: Any) -> tuple[int | None, int | None]:
        """A consumed partition's next offset to read and its high watermark (either None while unknown).

        Next after the highest offset an agent has taken; before any, the consumer's fetch position."""
        consumer = self.app.consumer
        last = self.read_offsets.get((tp.topic, tp.partition))
        position = last + 1 if last is not None else await consumer.position(tp)
        return position, consumer.highwater(tp)
