"""Producing fleet messages with kafka-python: what a vehicle gateway, the demo and tests use."""

from __future__ import annotations

from kafka import KafkaProducer
from kafka.errors import KafkaError

from core.errors import ServiceError
from core.retrying import retry_until
from core.settings import Settings
from records.messages import Frame, GpsFix
from streams import topics


class FleetProducer:
    """Sends frames and GPS fixes keyed by vehicle_id (so both land in co-partitioned partitions)."""

    def __init__(self, settings: Settings, connect_timeout_s: float = 30.0) -> None:
        self.settings = settings
        self._producer = retry_until(
            lambda: KafkaProducer(
                bootstrap_servers=settings.kafka.servers.split(","),
                client_id="fleetscope-producer",
                acks="all",
                linger_ms=5,
                max_request_size=settings.kafka.max_message_bytes,
                bootstrap_timeout_ms=int(1000 * min(connect_timeout_s, 30.0)),  # kafka-python's default: 30 s
            ),
            connect_timeout_s,
            pause_s=0.5,
            failure=lambda exc: ServiceError("broker", f"cannot connect to {settings.kafka.servers}: {exc}"),
            retry_on=KafkaError,
        )
        self.sent: dict[str, int] = {}

    def send_raw(self, topic: str, key: str | bytes | None, value: bytes) -> None:
        """Send bytes to a logical topic as they are (tests use this for malformed input)."""
        self.send_to(self.settings.topic(topic), key, value)

    def send_to(self, topic_name: str, key: str | bytes | None, value: bytes) -> None:
        """Send bytes to a topic by its full name (a dead letter's source topic, for replay)."""
        k = key.encode() if isinstance(key, str) else key
        self._producer.send(topic_name, key=k, value=value)
        self.sent[topic_name] = self.sent.get(topic_name, 0) + 1

    def send_frame(self, frame: Frame) -> None:
        self.send_raw(topics.FRAMES, frame.vehicle_id, frame.encode())

    def send_gps(self, fix: GpsFix) -> None:
        self.send_raw(topics.GPS, fix.vehicle_id, fix.encode())

    def flush(self, timeout_s: float = 60.0) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self) -> None:
        self._producer.close(timeout=10)

    def __enter__(self) -> "FleetProducer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
        self.close()
