"""Every Kafka topic fleetscope reads or writes, named once.

Producers, the Faust agents, sinks, the embedded stack (which creates them up front) and tests
import these names; nothing else spells a topic name.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings

FRAMES = "fleet.frames"  # vehicle -> dashcam JPEG + camera calibration
GPS = "fleet.gps"  # vehicle -> GPS fix
FRAMES_ENRICHED = "fleet.frames.enriched"  # internal, segment -> validated frame + GPS fix + ST context
SEGMENT_OBSERVATIONS = "fleet.segments.observations"  # internal, segment -> map-matched fixes
SCENES_INFERRED = "fleet.scenes.inferred"  # internal, vehicle -> one frame's model outputs, not yet tracked
SCENES = "fleet.scenes"  # vehicle -> one frame's model outputs with its tracks and kinematics, in capture order
ALERTS = "fleet.alerts"  # alert_id -> incident (updates of one incident in order; compactable)
DEADLETTER = "fleet.deadletter"  # anything that could not be processed, with its reason
DEADLETTER_REPLAYED = "fleet.deadletter.replayed"  # "partition:offset" of a dead letter -> it was replayed

FLEET_TOPICS = (
    FRAMES,
    GPS,
    FRAMES_ENRICHED,
    SEGMENT_OBSERVATIONS,
    SCENES_INFERRED,
    SCENES,
    ALERTS,
    DEADLETTER,
    DEADLETTER_REPLAYED,
)

SEGMENT_WINDOWS_TABLE = "segment-windows"  # Faust windowed table keyed by segment

DAY_MS = 24 * 3600 * 1000

# Topic-level settings every deployment gets (`fleetscope topics`, the embedded stack and the Strimzi
# KafkaTopic resources are all made from this). Inputs are kept a week so a dead letter can be replayed
# from its original; internal hops only need to outlive a worker outage; keyed state is compacted.
TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    FRAMES: {"retention.ms": str(7 * DAY_MS)},
    GPS: {"retention.ms": str(7 * DAY_MS)},
    FRAMES_ENRICHED: {"retention.ms": str(DAY_MS)},
    SEGMENT_OBSERVATIONS: {"retention.ms": str(DAY_MS)},
    SCENES_INFERRED: {"retention.ms": str(DAY_MS)},
    SCENES: {"retention.ms": str(7 * DAY_MS)},
    ALERTS: {"cleanup.policy": "compact"},  # alert_id -> its latest update
    DEADLETTER: {"retention.ms": str(30 * DAY_MS)},
    DEADLETTER_REPLAYED: {"cleanup.policy": "compact"},
}
CHANGELOG_CONFIG = {"cleanup.policy": "compact"}  # a table changelog only needs each key's latest value


@dataclass(frozen=True)
class TopicSpec:
    """One topic as it must exist on the broker."""

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


def changelog(settings: Settings, table: str) -> str:
    """Faust's changelog topic of a table (named by app id, not by the topic prefix)."""
    return f"{settings.worker.app_id}-{table}-changelog"


def topic_specs(settings: Settings) -> tuple[TopicSpec, ...]:
    """Every topic that must exist before the worker starts, table changelogs included.

    All are co-partitioned (the same partition count): the agents join streams by vehicle and segment key.
    """
    k = settings.kafka
    # Brokers refuse messages above their default (about 1 MB on Apache Kafka); frames may be larger.
    size = {"max.message.bytes": str(k.max_message_bytes)}
    named = [(settings.topic(t), TOPIC_CONFIGS[t]) for t in FLEET_TOPICS]
    named.append((changelog(settings, SEGMENT_WINDOWS_TABLE), CHANGELOG_CONFIG))
    return tuple(TopicSpec(name, k.partitions, k.replication_factor, {**config, **size}) for name, config in named)


def all_topics(settings: Settings) -> tuple[str, ...]:
    """Full names of every topic that must exist before the worker starts, table changelogs included."""
    return tuple(spec.name for spec in topic_specs(settings))
