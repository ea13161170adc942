"""Alert rules: when a scene becomes an alert, which alert it belongs to, and how severe it is.

The walking-skeleton rule: an SA-CLIP anomaly score at or above the threshold raises an alert of
the most probable anomaly type. All frames of one vehicle and type within one alert window are one
alert (a stable id), so replays and repeated frames update it rather than repeat it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from streams.schema import Alert, Location, Scene, utcnow
from streams.windows import window_bounds

_NAMESPACE = uuid.UUID("6f1c0f4e-5b1a-4a53-9a49-2f0c4f6d7e11")


def severity(score: float, threshold: float) -> str:
    """Grade by how far above the threshold the score is: top third critical, middle major."""
    span = max(1.0 - threshold, 1e-9)
    frac = (score - threshold) / span
    return "critical" if frac >= 2 / 3 else "major" if frac >= 1 / 3 else "minor"


def alert_id(vehicle_id: str, anomaly_type: str, window_start: datetime) -> str:
    """Stable id of the incident: same vehicle, type and window give the same id."""
    return str(uuid.uuid5(_NAMESPACE, f"{vehicle_id}|{anomaly_type}|{int(window_start.timestamp())}"))


def evaluate(scene: Scene, threshold: float, window_s: int) -> Alert | None:
    """The alert this scene raises, or None."""
    score = scene.anomaly.score
    if score < threshold:
        return None
    start, end = window_bounds(scene.captured_at, window_s)
    return Alert(
        alert_id=alert_id(scene.vehicle_id, scene.anomaly.type, start),
        type=scene.anomaly.type,
        severity=severity(score, threshold),  # type: ignore[arg-type]
        vehicle_id=scene.vehicle_id,
        location=Location(lat=scene.gps.lat, lon=scene.gps.lon) if scene.gps else None,
        cell_id=scene.cell_id,
        segment_id=scene.segment_id,
        window_start=start,
        window_end=end,
        score=score,
        evidence={
            "frame_ids": [scene.frame_id],
            "relation_scores": scene.anomaly.relation_scores,
            "triplets": [t.model_dump() for t in scene.triplets if t.predicate == "collides with"],
        },
        raised_at=utcnow(),
    )
