"""Plain-language answers to ST-VLM's five kinematic question types, from tracked objects and the ego's GPS.

The question types: travelled distance, speed, movement direction, inter-object distance
comparison (which is closer) and relative movement direction. ``answers`` asks all five about one
frame: the ego vehicle's distance, and the nearest tracked objects' speed, direction and relations.
"""

from __future__ import annotations

from kinematics.tracking import STATIONARY_MPS, TrackedObject, direction_label, relative_direction

QUESTION_TYPES = ("travelled distance", "speed", "movement direction", "distance comparison", "relative direction")


def name(obj: TrackedObject) -> str:
    return f"the {obj.label} (track {obj.track_id})"


def ego_travelled(travelled_m: float, elapsed_s: float) -> str:
    """How far did we travel?"""
    return f"We travelled {travelled_m:.0f} m in {elapsed_s:.0f} s."


def travelled(obj: TrackedObject) -> str:
    """How far did the object travel?"""
    return f"{name(obj).capitalize()} travelled {obj.travelled_m:.0f} m since it was first seen."


def speed(obj: TrackedObject) -> str:
    """How fast is the object moving (over the ground)?"""
    if obj.speed_mps is None:
        return f"{name(obj).capitalize()} has not been seen often enough to know its speed yet."
    return f"{name(obj).capitalize()} moves at {obj.speed_mps * 3.6:.0f} km/h."


def direction(obj: TrackedObject) -> str:
    """Which way is the object moving, relative to us?"""
    label = direction_label(obj.direction_deg, obj.speed_mps)
    if label is None:
        return f"{name(obj).capitalize()} has not been seen often enough to know its direction yet."
    if label == "stationary":
        return f"{name(obj).capitalize()} is standing still."
    return f"{name(obj).capitalize()} is moving {label}."


def closer(a: TrackedObject, b: TrackedObject) -> str:
    """Which of two objects is closer to us?"""
    near, far = (a, b) if a.distance_m <= b.distance_m else (b, a)
    return (
        f"{name(near).capitalize()} is closer: {near.distance_m:.0f} m, against {far.distance_m:.0f} m for {name(far)}."
    )


def relative(a: TrackedObject, b: TrackedObject) -> str:
    """Do two objects move the same way, opposite ways or across each other?"""
    if a.direction_deg is None or b.direction_deg is None:
        return f"The movement of {name(a)} and {name(b)} is not known yet."
    still = [o for o in (a, b) if (o.speed_mps or 0.0) < STATIONARY_MPS]
    if still:
        return f"{name(still[0]).capitalize()} is standing still."
    return f"{name(a).capitalize()} and {name(b)} move {relative_direction(a.direction_deg, b.direction_deg)}."


def answers(tracked: list[TrackedObject], ego_travelled_m: float, elapsed_s: float) -> dict[str, list[str]]:
    """All five question types about one frame, for the ego vehicle and the two nearest tracked objects."""
    nearest = sorted(tracked, key=lambda t: t.distance_m)[:2]
    out: dict[str, list[str]] = {q: [] for q in QUESTION_TYPES}
    out["travelled distance"] = [ego_travelled(ego_travelled_m, elapsed_s)] + [travelled(o) for o in nearest]
    out["speed"] = [speed(o) for o in nearest]
    out["movement direction"] = [direction(o) for o in nearest]
    if len(nearest) == 2:
        out["distance comparison"] = [closer(*nearest)]
        out["relative direction"] = [relative(*nearest)]
    return out
