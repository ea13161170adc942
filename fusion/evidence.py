"""Which frames an incident keeps as evidence, and what an operator needs drawn on them.

An alert names the frames that matched its rule (``evidence.frame_ids``: k of the vehicle's last n).
The keeper holds a short summary of each vehicle's recent scenes (boxes, labels, triplets, the
anomaly; where the JPEG is in ``fleet.frames``) so that when an alert fires, every matching frame,
the earlier ones included, can be stored with it. Each incident stores at most ``per_incident``
frames, each once; the JPEGs themselves are read back from Kafka and stored by the sink
(``streams.sinks.evidence``). A per-worker cache like the incident tracker's, bounded the same way.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.recent_vehicles import RecentVehicles
from records.messages import Alert, FramePosition, Scene

RELATION_MIN_SCORE = 0.5  # triplets drawn on an evidence frame (the alert's evidence lists the same ones)
MAX_INCIDENTS = 32  # per vehicle, the incidents whose stored frames are remembered (most recently updated)


@dataclass(frozen=True)
class EvidenceFrame:
    """One frame an incident keeps: where its JPEG is, and what to draw on it."""

    incident_id: str  # the vehicle incident's alert id (alerts.vehicle_incidents)
    alert_type: str
    frame_id: str
    vehicle_id: str
    captured_at: datetime
    source: FramePosition
    drawing: dict[str, Any]  # objects, relations, anomaly and the rule's score of this frame


def drawing(scene: Scene) -> dict[str, Any]:
    """What an evidence frame shows besides its pixels."""
    objects = [o.model_dump(include={"box", "label", "score", "facing"}) for o in scene.objects]
    relations = [t.model_dump() for t in scene.triplets if t.score >= RELATION_MIN_SCORE]
    anomaly = {"type": scene.anomaly.type, "score": scene.anomaly.score}
    return {"objects": objects, "relations": relations, "anomaly": anomaly}


@dataclass(frozen=True)
class _Seen:
    captured_at: datetime
    source: FramePosition | None
    drawing: dict[str, Any]


@dataclass
class _Vehicle:
    scenes: OrderedDict[str, _Seen] = field(default_factory=OrderedDict)  # by frame id, oldest first
    stored: OrderedDict[str, set[str]] = field(default_factory=OrderedDict)  # incident id -> frames given to the sink


class EvidenceKeeper:
    """Per vehicle, its recent scenes and what each incident has stored."""

    def __init__(self, keep_scenes: int, per_incident: int, max_vehicles: int = 10_000) -> None:
        self.keep_scenes = keep_scenes
        self.per_incident = per_incident
        self._vehicles = RecentVehicles(_Vehicle, max_vehicles)

    def observe(self, scene: Scene, alerts: list[Alert]) -> list[EvidenceFrame]:
        """Remember ``scene``; return the frames of ``alerts`` (its updates) not stored yet."""
        vehicle = self._vehicles.seen(scene.vehicle_id)
        vehicle.scenes[scene.frame_id] = _Seen(scene.captured_at, scene.source, drawing(scene))
        while len(vehicle.scenes) > self.keep_scenes:
            vehicle.scenes.popitem(last=False)
        out = []
        for alert in alerts:
            stored = vehicle.stored.setdefault(alert.alert_id, set())
            vehicle.stored.move_to_end(alert.alert_id)
            scores = alert.evidence.get("frame_scores", {})
            for frame_id in alert.evidence.get("frame_ids", []):
                seen = vehicle.scenes.get(frame_id)
                if seen is None or seen.source is None or frame_id in stored or len(stored) >= self.per_incident:
                    continue
                stored.add(frame_id)
                out.append(
                    EvidenceFrame(
                        incident_id=alert.alert_id,
                        alert_type=alert.type,
                        frame_id=frame_id,
                        vehicle_id=scene.vehicle_id,
                        captured_at=seen.captured_at,
                        source=seen.source,
                        drawing=seen.drawing | {"rule": alert.type, "rule_score": scores.get(frame_id)},
                    )
                )
        while len(vehicle.stored) > MAX_INCIDENTS:  # the least recently updated go first
            vehicle.stored.popitem(last=False)
        return out
