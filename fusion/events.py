"""Kinematic events for the alert rules, from each vehicle's scenes in capture order.

- ``hard_braking``: hard braking (``kinematics.braking``) between the GPS speeds of consecutive
  frames; score = deceleration / 8 m/s² (capped at 1).
- ``closing_fast``: a tracked object in our path (ahead, within ``PATH_HALF_WIDTH_M`` of our line)
  closes in at ``CLOSING_MIN_MPS`` or more and would be reached within ``CLOSING_TTC_S``; score =
  2 s / time to contact (capped at 1).
- ``wrong_way``: a tracked vehicle in our path moves towards us at ``WRONG_WAY_MIN_MPS`` or more;
  score = its speed / 10 m/s (capped at 1).

The fusion stage runs this because its input is keyed by vehicle: tracking needs each vehicle's
frames in order, one worker at a time. A frame older than the vehicle's latest is not tracked.
"""

from __future__ import annotations

import numpy as np

from core.recent_vehicles import RecentVehicles
from kinematics.braking import acceleration, is_hard_braking
from kinematics.tracking import VehicleTracker
from models.vocab import VEHICLE_CLASSES
from records.messages import KinematicEvent, ObjectMotion, Scene, SceneKinematics, TrackedTriplet

PATH_HALF_WIDTH_M = 1.8
CLOSING_MIN_MPS = 5.0
CLOSING_TTC_S = 4.0
WRONG_WAY_MIN_MPS = 3.0


class KinematicWatch:
    """Per-vehicle trackers (the ``max_vehicles`` most recently seen) and the events of each scene."""

    def __init__(self, max_vehicles: int = 10_000) -> None:
        self._trackers = RecentVehicles(VehicleTracker, max_vehicles)

    def observe(self, scene: Scene) -> SceneKinematics | None:
        """Track ``scene``'s objects and name its kinematic events; None for a frame older than its vehicle's latest."""
        tracker = self._trackers.seen(scene.vehicle_id)
        if tracker.last_at is not None and scene.captured_at <= tracker.last_at:
            return None  # late or repeated: the tracks have moved on

        speed = scene.gps.speed_mps if scene.gps else None
        heading = scene.gps.heading_deg if scene.gps else None
        events = []
        # The tracker still holds the previous frame's time and GPS speed: it moves on in update() below.
        if speed is not None and tracker.last_speed is not None and tracker.last_at is not None:
            dt = (scene.captured_at - tracker.last_at).total_seconds()
            accel = acceleration(tracker.last_speed, speed, dt)
            if accel is not None and is_hard_braking(accel):
                events.append(
                    KinematicEvent(
                        type="hard_braking", score=min(1.0, -accel / 8.0), track_id=None, detail=f"{accel:.1f} m/s²"
                    )
                )

        positions = np.array(
            [[o.x_m, o.y_m] if o.x_m is not None and o.y_m is not None else [np.nan, np.nan] for o in scene.objects]
        ).reshape(-1, 2)
        labels = [o.label for o in scene.objects]
        facing = [o.facing for o in scene.objects]
        tracked = tracker.update(scene.captured_at, positions, labels, speed, heading, facing)
        motions = []
        for t in tracked:
            motions.append(
                ObjectMotion(
                    object=t.index,
                    track_id=t.track_id,
                    speed_mps=_round(t.speed_mps),
                    direction_deg=_round(t.direction_deg),
                    closing_mps=_round(t.closing_mps),
                )
            )
            in_path = t.x_m > 0 and abs(t.y_m) <= PATH_HALF_WIDTH_M
            if not in_path:
                continue
            if t.closing_mps is not None and t.closing_mps >= CLOSING_MIN_MPS:
                ttc = t.distance_m / t.closing_mps
                if ttc <= CLOSING_TTC_S:
                    events.append(
                        KinematicEvent(
                            type="closing_fast",
                            score=min(1.0, 2.0 / ttc),
                            track_id=t.track_id,
                            detail=f"{t.label} {t.distance_m:.0f} m ahead closing at {t.closing_mps:.1f} m/s",
                        )
                    )
            towards = t.direction_deg is not None and abs(t.direction_deg) >= 135
            fast = t.speed_mps is not None and t.speed_mps >= WRONG_WAY_MIN_MPS
            if t.label in VEHICLE_CLASSES and towards and fast:
                assert t.speed_mps is not None
                events.append(
                    KinematicEvent(
                        type="wrong_way",
                        score=min(1.0, t.speed_mps / 10.0),
                        track_id=t.track_id,
                        detail=f"{t.label} {t.distance_m:.0f} m ahead in our path, coming at {t.speed_mps:.1f} m/s",
                    )
                )
        linked = tracker.link(scene.captured_at, [(t.subject, t.predicate, t.object) for t in scene.triplets], tracked)
        triplets = [TrackedTriplet.model_validate(t, from_attributes=True) for t in linked]
        return SceneKinematics(objects=motions, triplets=triplets, events=events)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
