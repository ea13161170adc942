"""Every Kafka topic fleetscope reads or writes, named once.

Producers, the Faust agents, sinks, the embedded stack (which creates them up front) and tests
import these names; nothing else spells a topic name.
"""

from __future__ import annotations

from fleetscope.settings import Settings

FRAMES = "fleet.frames"  # vehicle -> dashcam JPEG + camera calibration
GPS = "fleet.gps"  # vehicle -> GPS fix
FRAMES_ENRICHED = "fleet.frames.enriched"  # internal: validated frame + attached GPS fix + ST context
SCENES = "fleet.scenes"  # per-frame model outputs
ALERTS = "fleet.alerts"  # anomaly alerts for operations teams
DEADLETTER = "fleet.deadletter"  # anything that could not be processed, with its reason

FLEET_TOPICS = (FRAMES, GPS, FRAMES_ENRICHED, SCENES, ALERTS, DEADLETTER)


def all_topics(settings: Settings) -> tuple[str, ...]:
    """Full names of every topic that must exist before the worker starts."""
    return tuple(settings.topic(t) for t in FLEET_TOPICS)
