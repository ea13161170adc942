"""The fusion stage's one entrance: a vehicle's inferred scene in, the scene with its kinematics and
the alert updates it raises out.

Scenes must arrive per vehicle in capture order (``fleet.scenes.inferred`` is keyed by vehicle, so
one worker sees all of a vehicle's frames): the object tracks and kinematic events (``fusion.events``)
and the incident rules (``fusion.incidents``) keep per-vehicle state. Alerts of different vehicles
are merged where every worker's alerts meet, in PostgreSQL (``fusion.merging``).
"""

from __future__ import annotations

from alerts.rules import RuleSet
from fusion.events import KinematicWatch
from fusion.incidents import IncidentTracker
from records.messages import Alert, Scene

Fused = tuple[Scene, list[Alert]]  # a scene with its kinematics, and the alert updates it raised


class Fusion:
    """Kinematics and incidents of every vehicle this worker fuses."""

    def __init__(self, rules: RuleSet, cooldown_s: float) -> None:
        self.watch = KinematicWatch()
        self.incidents = IncidentTracker(rules, cooldown_s)

    def observe(self, inferred: Scene) -> Fused:
        """The scene with its kinematics (None for a frame older than its vehicle's latest), and its alerts."""
        scene = inferred.model_copy(update={"kinematics": self.watch.observe(inferred)})
        return scene, self.incidents.observe(scene, scene.kinematics.events if scene.kinematics else ())
