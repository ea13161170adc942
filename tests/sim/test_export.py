"""Dataset export: reproducible from a seed, split by episode, held-out types only in test."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from roads.network import RoadNetwork, load_network
from sim.export import ExportConfig, export
from sim.render import render_jpeg
from sim.truth import FrameTruth
from sim.world import WorldConfig

HOLDOUT = ("pedestrian_in_lane", "wrong_way")


@pytest.fixture(scope="module")
def network() -> RoadNetwork:
    return load_network()


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def _config(frames: int) -> ExportConfig:
    # Short episodes (24 frames) and many incidents so that a small export has every split and anomalies.
    return ExportConfig(
        frames=frames, seed=7, episode_s=16.0, world=WorldConfig(vehicles=3, incidents_per_vehicle_hour=900)
    )


def test_the_same_seed_writes_identical_files(tmp_path: Path, network: RoadNetwork):
    a, b = tmp_path / "a", tmp_path / "b"
    export(network, a, _config(90), render_jpeg)
    export(network, b, _config(90), render_jpeg)
    assert _digest(a) == _digest(b)
    assert len(list((a / "images").iterdir())) == 90


def test_frames_are_split_by_episode_and_held_out_types_never_train(tmp_path: Path, network: RoadNetwork):
    manifest = export(network, tmp_path, _config(480), render_jpeg)
    frames = [FrameTruth.model_validate_json(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()]
    assert manifest["counts"]["frames"] == len(frames) == 480
    assert set(manifest["counts"]["splits"]) == {"train", "val", "test"}
    episodes = defaultdict(set)
    for f in frames:
        if f.anomaly in HOLDOUT:
            assert f.split == "test"
        episodes[f.episode].add(f.split)
    assert all(len(splits) == 1 for splits in episodes.values()), "an episode's frames all stay in one split"
    # Disjoint by episode means disjoint in what an episode fixes: its start (date and hour) and weather.
    starts = {e["episode"]: (e["start"], e["weather"]) for e in manifest["episodes"]}
    by_split = defaultdict(set)
    for episode, (split,) in episodes.items():
        by_split[split].add(starts[episode])
    assert not by_split["train"] & by_split["test"] and not by_split["val"] & by_split["test"]
    seen_types = {f.anomaly for f in frames if f.anomaly}
    assert seen_types & set(HOLDOUT) and seen_types - set(HOLDOUT)
    for f in frames[:20]:
        image = Image.open(io.BytesIO((tmp_path / f.image).read_bytes()))
        assert image.format == "JPEG" and image.size == (224, 224)
    for name in ("gps", "incidents", "events", "road_conditions", "segments"):
        assert (tmp_path / f"{name}.jsonl").stat().st_size > 0


def test_simulate_command_exports_and_explains_mistakes(tmp_path: Path):
    def simulate(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "fleetscope", "simulate", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    out = simulate("--export", str(tmp_path / "ds"), "--frames", "30", "--seed", "3")
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 30 and (tmp_path / "ds" / "manifest.json").is_file()

    out = simulate("--frames", "30")
    assert out.returncode == 2 and "choose exactly one of --to-kafka" in out.stderr
    out = simulate("--export", str(tmp_path / "x"), "--holdout", "meteor")
    assert out.returncode == 2 and "unknown anomaly type" in out.stderr and "collision" in out.stderr
