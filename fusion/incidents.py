"""From rule matches to alerts: persistence over a vehicle's frames, and one alert per incident.

``fleet.scenes`` is keyed by vehicle, so the worker that owns a vehicle sees all of its frames and
keeps their recent rule matches here. A rule fires when at least k of the vehicle's last n frames
(by capture time, within ``within_s``) match it. Firings of one vehicle and type less than
``cooldown_s`` apart (capture time) are one incident: one stable alert id, updated with each firing
rather than repeated. Ids derive from the vehicle, type and the incident's first frame, and all
times are capture times, so replaying the same frames gives the same alerts.

This is a per-worker cache like the vehicle tracks: after a restart or rebalance persistence starts
again from the next frames, and an incident resumed there keeps its id only if the alert sink
merges it (same vehicle, type and first frame).

Incidents of different vehicles on the same road segment are merged by the sink
(``streams.sinks.alert_store``), which sees every worker's alerts.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerts.rules import Rule, RuleSet
from core.recent_vehicles import RecentVehicles
from records.messages import Alert, KinematicEvent, Location, Scene, utcnow

_NAMESPACE = uuid.UUID("6f1c0f4e-5b1a-4a53-9a49-2f0c4f6d7e11")


def alert_id(vehicle_id: str, alert_type: str, first_frame_at: datetime) -> str:
    """Stable id of an incident: its vehicle, type and the capture time of its first matching frame."""
    return str(uuid.uuid5(_NAMESPACE, f"{vehicle_id}|{alert_type}|{first_frame_at.timestamp():.3f}"))


@dataclass(frozen=True)
class _Frame:
    captured_at: datetime
    frame_id: str
    scores: dict[str, float]  # rule type -> this frame's score, for the rules it matches


@dataclass
class _Incident:
    alert_id: str
    first: datetime
    last: datetime


@dataclass
class _Vehicle:
    frames: list[_Frame] = field(default_factory=list)  # by capture time
    incidents: dict[str, list[_Incident]] = field(default_factory=dict)  # rule type -> recent incidents


class IncidentTracker:
    """Applies a rule set to each vehicle's frames in turn; see the module docstring."""

    def __init__(self, rules: RuleSet, cooldown_s: float, max_vehicles: int = 10_000) -> None:
        self.rules = rules
        self.cooldown = timedelta(seconds=cooldown_s)
        self._keep = max(r.persistence.n for r in rules.rules)
        self._vehicles = RecentVehicles(_Vehicle, max_vehicles)

    def observe(self, scene: Scene, events: Sequence[KinematicEvent] = ()) -> list[Alert]:
        """The alerts this frame and its kinematic ``events`` raise or update (none, or one per rule that fires)."""
        vehicle = self._vehicles.seen(scene.vehicle_id)
        scores = {r.type: s for r in self.rules.rules if (s := r.score(scene, events)) is not None}
        frame = _Frame(scene.captured_at, scene.frame_id, scores)
        at = bisect.bisect_left(vehicle.frames, frame.captured_at, key=lambda f: f.captured_at)
        if at < len(vehicle.frames) and vehicle.frames[at].frame_id == frame.frame_id:
            vehicle.frames[at] = frame  # the same frame again (a replay): same result
        else:
            vehicle.frames.insert(at, frame)
        alerts = [a for rule in self.rules.rules if (a := self._fire(rule, scene, events, vehicle, at))]
        self._trim(vehicle)
        return alerts

    def _fire(
        self, rule: Rule, scene: Scene, events: Sequence[KinematicEvent], vehicle: _Vehicle, at: int
    ) -> Alert | None:
        p = rule.persistence
        if rule.type not in vehicle.frames[at].scores:
            return None
        now = vehicle.frames[at].captured_at
        last_n = vehicle.frames[max(0, at + 1 - p.n) : at + 1]
        recent = [f for f in last_n if (now - f.captured_at).total_seconds() <= p.within_s]
        matching = [f for f in recent if rule.type in f.scores]
        if len(matching) < p.k:
            return None
        incident = self._incident(vehicle, rule.type, scene.vehicle_id, matching[0].captured_at, now)
        score = max(f.scores[rule.type] for f in matching)
        return Alert(
            alert_id=incident.alert_id,
            type=rule.type,
            severity=rule.severity.grade(score),
            vehicle_id=scene.vehicle_id,
            vehicles=[scene.vehicle_id],
            confidence=score,
            location=Location(lat=scene.gps.lat, lon=scene.gps.lon) if scene.gps else None,
            cell_id=scene.cell_id,
            segment_id=scene.segment_id,
            window_start=incident.first,
            window_end=incident.last,
            score=score,
            evidence={
                "rule": rule.type,
                "persistence": f"{len(matching)} of the last {len(recent)} frames",
                "frame_ids": sorted(f.frame_id for f in matching),
                "frame_scores": {f.frame_id: round(f.scores[rule.type], 4) for f in matching},
                "relation_scores": scene.anomaly.relation_scores,
                "triplets": [t.model_dump() for t in scene.triplets if t.score >= 0.5],
                "kinematics": [e.model_dump() for e in events],
            },
            raised_at=utcnow(),
        )

    def _incident(
        self, vehicle: _Vehicle, alert_type: str, vehicle_id: str, first: datetime, last: datetime
    ) -> _Incident:
        incidents = vehicle.incidents.setdefault(alert_type, [])
        for incident in incidents:
            if incident.first - self.cooldown <= last and first <= incident.last + self.cooldown:
                incident.first, incident.last = min(incident.first, first), max(incident.last, last)
                return incident
        incident = _Incident(alert_id(vehicle_id, alert_type, first), first, last)
        incidents.append(incident)
        return incident

    def _trim(self, vehicle: _Vehicle) -> None:
        # Keep enough frames for persistence around late frames, and incidents within a cooldown of them.
        del vehicle.frames[: max(0, len(vehicle.frames) - 4 * self._keep)]
        oldest = vehicle.frames[0].captured_at - self.cooldown
        for alert_type, incidents in vehicle.incidents.items():
            vehicle.incidents[alert_type] = [i for i in incidents if i.last >= oldest]
