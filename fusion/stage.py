"""The fusion stage's one entrance: a vehicle's inferred scene in, the scene with its kinematics, the
alert updates it raises and the frames they keep as evidence out.

Scenes must arrive per vehicle in capture order (``fleet.scenes.inferred`` is keyed by vehicle, so
one worker sees all of a vehicle's frames): the object tracks and kinematic events (``fusion.events``)
and the incident rules (``fusion.incidents``) keep per-vehicle state. Alerts of different vehicles
are merged where every worker's alerts meet, in PostgreSQL (``fusion.merging``).
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts.rules import RuleSet
from fusion.events import KinematicWatch
from fusion.evidence import EvidenceFrame, EvidenceKeeper
from fusion.incidents import IncidentTracker
from records.messages import Alert, Scene


@dataclass(frozen=True)
class Fused:
    """A scene with its kinematics, the alert updates it raised and the frames they keep as evidence."""

    scene: Scene
    alerts: list[Alert]
    evidence: list[EvidenceFrame]


class Fusion:
    """Kinematics, incidents and evidence frames of every vehicle this worker fuses."""

    def __init__(self, rules: RuleSet, cooldown_s: float, evidence_frames: int = 6, max_vehicles: int = 10_000) -> None:
        self.watch = KinematicWatch(max_vehicles)
        self.incidents = IncidentTracker(rules, cooldown_s, max_vehicles)
        # Enough scenes for every frame a firing rule can name (its last n, around late frames).
        keep = 4 * max((r.persistence.n for r in rules.rules), default=1)
        self.evidence = EvidenceKeeper(keep, evidence_frames, max_vehicles)

    def observe(self, inferred: Scene) -> Fused:
        """The scene with its kinematics (None for a frame older than its vehicle's latest), its alerts
        and their evidence frames."""
        scene = inferred.model_copy(update={"kinematics": self.watch.observe(inferred)})
        alerts = self.incidents.observe(scene, scene.kinematics.events if scene.kinematics else ())
        return Fused(scene, alerts, self.evidence.observe(scene, alerts))
