"""What every agent shares at run time: settings, the Faust app, its topics and a counted send."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust

from fleetscope.settings import Settings
from streams import metrics
from streams.context.gps_track import RecentFixes


@dataclass
class Runtime:
    """Settings, Faust app and raw-bytes topic handles, by logical topic name."""

    settings: Settings
    app: faust.App
    gps: RecentFixes
    topics: dict[str, Any] = field(default_factory=dict)
    read_offsets: dict[tuple[str, int], int] = field(default_factory=dict)

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

    async def send(self, name: str, key: bytes | str | None, value: bytes) -> None:
        """Produce one message and count it."""
        if isinstance(key, str):
            key = key.encode()
        await self.topic(name).send(key=key, value=value)
        metrics.MESSAGES_OUT.labels(self.settings.topic(name)).inc()

    def received(self, name: str, *events: Any) -> None:
        """Count consumed events and remember the last offset read per partition (for consumer lag)."""
        metrics.MESSAGES_IN.labels(self.settings.topic(name)).inc(len(events))
        for event in events:
            msg = event.message
            self.read_offsets[(msg.topic, msg.partition)] = msg.offset
