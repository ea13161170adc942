"""Sample frames that show the world's range: weather, daylight, surfaces, traffic and every anomaly type.

Each sample is a short run at a chosen time and weather, from which the first frame matching the
sample's condition is taken (fullest scene first), so the contact sheet regenerates identically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from roads.network import RoadNetwork
from sim.local_scene import INCIDENT_TRACKS
from sim.scene_spec import SceneSpec
from sim.truth import FrameTruth
from sim.world import FrameEmission, World, WorldConfig


@dataclass(frozen=True)
class Sample:
    """One tile of the contact sheet: when, what weather, and what the frame must show."""

    start: str
    weather: str
    want: Callable[[FrameTruth], bool]


def _is(aspect: str, label: str) -> Callable[[FrameTruth], bool]:
    return lambda f: f.aspects[aspect] == label and f.anomaly is None and f.aspects["accessibility"] == "open"


def _anomaly(kind: str) -> Callable[[FrameTruth], bool]:
    return lambda f: f.anomaly == kind


NOON = "2026-06-10T09:00:00+00:00"  # 12:00 in Helsinki
RUSH = "2026-09-14T05:00:00+00:00"  # Monday 08:00
SAMPLES: tuple[Sample, ...] = (
    Sample(NOON, "clear", _is("congestion", "free flow")),
    Sample(RUSH, "clear", _is("congestion", "heavy")),
    Sample(NOON, "clear", _is("surface", "damaged")),
    Sample(NOON, "clear", _is("scene_type", "arterial")),
    Sample(NOON, "rain", _is("surface", "wet")),
    Sample(NOON, "fog", _is("weather_lighting", "fog")),
    Sample("2026-02-10T10:00:00+00:00", "snow", _is("surface", "snow")),
    Sample("2026-03-05T15:15:00+00:00", "clear", _is("weather_lighting", "dusk")),
    Sample("2026-11-10T19:00:00+00:00", "clear", _is("weather_lighting", "night")),
    Sample("2026-11-10T19:00:00+00:00", "rain", _is("surface", "wet")),
    Sample(RUSH, "clear", _anomaly("collision")),
    Sample(RUSH, "clear", _anomaly("stopped_vehicle")),
    Sample(NOON, "clear", _anomaly("pedestrian_in_lane")),
    Sample(NOON, "clear", _anomaly("wrong_way")),
    Sample(NOON, "clear", _anomaly("obstacle")),
    Sample(NOON, "clear", _is("scene_type", "residential")),
)


def find_samples(network: RoadNetwork, seed: int) -> list[tuple[SceneSpec, FrameTruth]]:
    """One (scene, truth) per sample; raises if a sample's condition never occurs (a broken world)."""
    config = WorldConfig(vehicles=12, incidents_per_vehicle_hour=120.0)
    found = []
    for i, sample in enumerate(SAMPLES):
        world = World(network, config, seed + i, datetime.fromisoformat(sample.start), weather=sample.weather)
        matches = [e for e in world.run(240) if isinstance(e, FrameEmission) and sample.want(e.truth)]
        if not matches:
            raise RuntimeError(f"no frame for sample {i} ({sample.start}, {sample.weather}) in 240 simulated s")
        best = max(matches, key=_salience)
        found.append((best.spec, best.truth))
    return found


def _salience(e: FrameEmission) -> float:
    """Anomalous frames: how large the incident looks; other frames: how much is going on."""
    if e.truth.anomaly is None:
        return len(e.truth.objects)
    incident = [o.box for o in e.truth.objects if o.track_id >= INCIDENT_TRACKS]
    return max(((u2 - u1) * (v2 - v1) for u1, v1, u2, v2 in incident), default=0.0)


def caption(truth: FrameTruth) -> list[str]:
    """Short label lines for a frame."""
    a = truth.aspects
    return [
        f"{truth.weather} / {truth.lighting} / {a['surface']}",
        f"{a['scene_type']}, {a['congestion']}",
        f"anomaly: {truth.anomaly or 'none'}",
    ]


def write_contact_sheet(network: RoadNetwork, path: Path, seed: int = 7) -> None:
    """Render the samples with their labels into one image file."""
    from sim.contact_sheet import contact_sheet
    from sim.render import render

    tiles = [(render(spec), spec, caption(truth)) for spec, truth in find_samples(network, seed)]
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(tiles, columns=4).save(path)
