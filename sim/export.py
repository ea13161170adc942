"""Write a dataset: JPEG frames plus ground truth, deterministic from a seed, split by episode.

The dataset is a set of short episodes, each on its own date, hour, weather and incident draw, so that a
few thousand frames cover the seasons, daylight and rush hours. The split unit is the episode: no test
frame shares its episode (date, hour, weather and incidents) with a training frame, so the ST
context's clock and calendar cannot stand in for the image (``split_unit="vehicle"``, one vehicle in one episode, is the
older protocol, kept for the corpus whose test split is never read). Held-out anomaly types occur only
in test episodes, so that those types can be scored zero-shot. The format is described in
docs/simulator.md.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from models.vocab import HELD_OUT_TYPES
from roads.network import RoadNetwork
from sim.traffic import INCIDENT_WEIGHT
from sim.truth import (
    TRUTH_VERSION,
    AnomalyEvent,
    FrameTruth,
    GpsTruth,
    IncidentTruth,
    RoadConditionTruth,
    write_jsonl,
)
from sim.world import FrameEmission, GpsEmission, World, WorldConfig

FORMAT = "fleetscope-sim-dataset"
SPLITS = ("train", "val", "test")
HOLDOUT_BOOST = 6.0


@dataclass(frozen=True)
class ExportConfig:
    """What to export."""

    frames: int = 2000
    seed: int = 7
    episode_s: float = 60.0
    holdout: tuple[str, ...] = HELD_OUT_TYPES
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_unit: str = "episode"  # or "vehicle": one vehicle in one episode
    holdout_boost: float = HOLDOUT_BOOST  # held-out types are this much more frequent in test episodes
    world: WorldConfig = field(default_factory=lambda: WorldConfig(vehicles=8, incidents_per_vehicle_hour=150.0))


SPLIT_UNITS = ("episode", "vehicle")
EPISODE_BUCKETS = 20  # episodes are dealt to splits in rounds of 20, so each split gets its exact share


def split_of(seed: int, episode: int, vehicle_id: str, fractions: tuple[float, float, float], unit: str) -> str:
    """The split of one episode (or of one vehicle in it), fixed by its number, so adding episodes never
    reshuffles others."""
    if unit == "episode":
        u = (episode % EPISODE_BUCKETS + 0.5) / EPISODE_BUCKETS
    elif unit == "vehicle":
        u = zlib.crc32(f"{seed}/{episode}/{vehicle_id}".encode()) / 2**32
    else:
        raise ValueError(f"split_unit must be one of {SPLIT_UNITS}, not {unit!r}")
    return "train" if u < fractions[0] else "val" if u < fractions[0] + fractions[1] else "test"


def _split(config: ExportConfig, episode: int, vehicle_id: str) -> str:
    return split_of(config.seed, episode, vehicle_id, config.split_fractions, config.split_unit)


def _incident_weights(config: ExportConfig, episode: int, vehicle_id: str) -> dict[str, float]:
    """Held-out types never meet training vehicles, and meet test vehicles more often (enough positives)."""
    test = _split(config, episode, vehicle_id) == "test"
    boost = config.holdout_boost
    return {k: (w * boost if test else 0.0) if k in config.holdout else w for k, w in INCIDENT_WEIGHT.items()}


def config_record(config: ExportConfig) -> dict[str, Any]:
    """``config`` as the manifest records it (JSON types: tuples become lists)."""
    return json.loads(json.dumps(asdict(config)))


def episode_start(seed: int, episode: int) -> datetime:
    """A date and hour in 2026 for an episode; a third of episodes fall in a rush hour."""
    rng = np.random.default_rng([seed, episode, 1_000_003])
    day = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=int(rng.integers(365)))
    hour = float(rng.choice([5.5, 14.0])) + rng.normal(0, 0.7) if rng.random() < 1 / 3 else rng.uniform(0, 24)
    return day + timedelta(seconds=round(float(hour) % 24 * 3600))


def episode_worlds(network: RoadNetwork, config: ExportConfig) -> Iterator[World]:
    """The dataset's episodes, endlessly: each a fresh world on its own date, hour and weather."""
    for episode in itertools.count():
        yield World(
            network,
            config.world,
            config.seed,
            episode_start(config.seed, episode),
            episode=episode,
            split_for=partial(_split, config, episode),
            incident_weights=partial(_incident_weights, config, episode),
        )


def export(
    network: RoadNetwork,
    out: Path,
    config: ExportConfig,
    render_jpeg: Callable[[Any], bytes],
    progress: Callable[[int], None] = lambda n: None,
) -> dict[str, Any]:
    """Simulate and write ``config.frames`` frames to ``out``; returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    frames: list[FrameTruth] = []
    gps: list[GpsTruth] = []
    incidents: list[IncidentTruth] = []
    events: list[AnomalyEvent] = []
    conditions: list[RoadConditionTruth] = []
    episodes: list[dict[str, Any]] = []
    for world in episode_worlds(network, config):
        if len(frames) >= config.frames:
            break
        for emission in world.run(config.episode_s):
            if isinstance(emission, GpsEmission):
                gps.append(emission.truth)
            elif isinstance(emission, FrameEmission) and len(frames) < config.frames:
                (out / emission.truth.image).write_bytes(render_jpeg(emission.spec))
                frames.append(emission.truth)
                progress(1)
        incidents += world.incidents()
        events += world.events
        conditions += world.road_conditions()
        weather = world.traffic.weather.at(world.start)
        episodes.append({"episode": world.episode, "start": world.start.isoformat(), "weather": weather})
    write_jsonl(out / "frames.jsonl", frames)
    write_jsonl(out / "gps.jsonl", gps)
    write_jsonl(out / "incidents.jsonl", incidents)
    write_jsonl(out / "events.jsonl", events)
    write_jsonl(out / "road_conditions.jsonl", conditions)
    _write_segments(network, out / "segments.jsonl")
    manifest = {
        "format": FORMAT,
        "truth_version": TRUTH_VERSION,
        "seed": config.seed,
        "network": {"file": Path(network.source).name, "sha256": _sha256(Path(network.source))},
        "config": config_record(config),
        "episodes": episodes,
        "counts": {
            "frames": len(frames),
            "gps_fixes": len(gps),
            "incidents": len(incidents),
            "events": len(events),
            "splits": dict(Counter(f.split for f in frames)),
            "anomalies": dict(Counter(f.anomaly or "none" for f in frames)),
        },
        "synthetic": True,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _write_segments(network: RoadNetwork, path: Path) -> None:
    with path.open("w") as f:
        for s in network.segments:
            lat, lon = network.projection.to_latlon(s.xy[:, 0], s.xy[:, 1])
            row = {
                "segment_id": s.segment_id,
                "name": s.name,
                "road_class": s.road_class,
                "lanes": s.lanes,
                "lanes_opposite": s.lanes_opposite,
                "speed_limit_kmh": s.speed_limit_kmh,
                "length_m": round(s.length_m, 3),
                "out_degree": s.out_degree,
                "scene_type": s.scene_type,
                "road_width": s.road_width,
                "geometry": [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lat, lon, strict=True)],
            }
            f.write(json.dumps(row, sort_keys=True) + "\n")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
