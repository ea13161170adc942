"""Every Kafka topic fleetscope reads or writes, named once.

Producers, the Faust agents, sinks, the embedded stack (which creates them up front) and tests
import these names; nothing else spells a topic name.
"""

from __future__ import annotations

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


def changelog(settings: Settings, table: str) -> str:
    """Faust's changelog topic of a table (named by app id, not by the topic prefix)."""
    return f"{settings.worker.app_id}-{table}-changelog"


def all_topics(settings: Settings) -> tuple[str, ...]:
    """Full names of every topic that must exist before the worker starts, table changelogs included."""
    return (*(settings.topic(t) for t in FLEET_TOPICS), changelog(settings, SEGMENT_WINDOWS_TABLE))
