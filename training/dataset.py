"""Simulator datasets for training and evaluating the models (synthetic), prepared once and cached.

Datasets from different worlds (``sim.seeds``) play different roles, as web data and a target domain
do for CLIP:

- the **corpus** (``CORPUS``) stands in for CLIP's web-scale pretraining data: base CLIP, SA-CLIP and
  the scene graph learn from its train and val splits (its test split, which alone shows held-out
  anomaly types, is never read, so it keeps the older split by vehicle within an episode);
- the **benchmark** (``BENCHMARK``) is the target domain, split by episode: few-shot examples come
  from its train split, model choices from val, and every reported figure from test; alert-rule
  thresholds are tuned on a replay of its train and val splits;
- the **alert worlds** (``ALERT_WORLDS``) are held out of everything: alert figures are reported on
  them, every episode counted as test.

Each frame comes with the ST context vector the worker would send with it
(``streams.context.replay``), so ST-CLIP trains on what it will be served.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.settings import REPO_ROOT
from models.clip_backbone import ImageCfg
from models.preprocess import normalise, to_uint8_batch
from records.messages import GpsFix
from sim import seeds
from sim.export import ExportConfig, config_record, export
from sim.publish import gps_message
from sim.truth import TRUTH_VERSION, FrameTruth, GpsTruth

log = logging.getLogger(__name__)

DATASET_DIR = REPO_ROOT / "var" / "datasets"
CORPUS = ExportConfig(frames=12000, seed=seeds.CORPUS, split_unit="vehicle")
# 30 s episodes give the benchmark 75 episodes (8 vehicles, a frame each 2 s), 9 of them in test.
BENCHMARK = ExportConfig(frames=9000, seed=seeds.BENCHMARK, episode_s=30.0)
# Every episode of an alert world is scored, with every incident type at its natural frequency.
ALERT_WORLDS = tuple(
    ExportConfig(frames=5000, seed=seed, episode_s=30.0, split_fractions=(0.0, 0.0, 1.0), holdout_boost=1.0)
    for seed in seeds.ALERT_HELD_OUT
)


@dataclass(frozen=True)
class FrameSet:
    """Frames of one dataset with their truth, pixels at one model size and ST context vectors."""

    root: Path
    truth: list[FrameTruth]
    pixels: np.ndarray  # uint8 [N, size, size, 3]
    st_context: np.ndarray  # float32 [N, ST_CONTEXT_DIM]

    def split(self, *names: str) -> np.ndarray:
        """Indices of the frames in any of the splits ``names``."""
        return np.array([i for i, f in enumerate(self.truth) if f.split in names], dtype=np.int64)

    def images(self, idx: np.ndarray | torch.Tensor, cfg: ImageCfg) -> torch.Tensor:
        """Model input [len(idx), 3, size, size] for frames ``idx``."""
        return normalise(self.pixels[np.asarray(idx)], cfg.mean, cfg.std)


def ensure_export(config: ExportConfig, root: Path | None = None) -> Path:
    """The dataset directory for ``config``, exported by the simulator unless it is already there."""
    root = root or DATASET_DIR / f"sim-seed{config.seed}-{config.frames}"
    manifest = root / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text())
        if m["truth_version"] == TRUTH_VERSION and m["config"] == config_record(config):
            return root
        log.warning("%s holds another dataset; exporting again", root)
    from roads.network import load_network
    from sim.render import render_jpeg

    with tqdm(total=config.frames, desc=f"simulating dataset seed {config.seed}", unit="frame") as bar:
        export(load_network(), root, config, render_jpeg, progress=bar.update)
    return root


def load_frames(root: Path, image_size: int) -> FrameSet:
    """Load a dataset: images decoded at ``image_size`` and ST contexts replayed (cached in ``root/cache``)."""
    truth = [FrameTruth.model_validate_json(line) for line in (root / "frames.jsonl").open()]
    cache = root / "cache"
    cache.mkdir(exist_ok=True)
    pixels_file = cache / f"pixels-{image_size}.npy"
    if pixels_file.exists():
        pixels = np.load(pixels_file)
    else:
        pixels = np.empty((len(truth), image_size, image_size, 3), dtype=np.uint8)
        for start in tqdm(range(0, len(truth), 256), desc=f"decoding images at {image_size} px", unit="batch"):
            chunk = truth[start : start + 256]
            pixels[start : start + len(chunk)] = to_uint8_batch(
                [(root / f.image).read_bytes() for f in chunk], image_size
            )
        np.save(pixels_file, pixels)
    context_file = cache / "st_context.npy"
    if context_file.exists():
        st_context = np.load(context_file)
    else:
        st_context = np.asarray(replayed_contexts(root, truth), dtype=np.float32)
        np.save(context_file, st_context)
    return FrameSet(root, truth, pixels, st_context)


def replayed_contexts(root: Path, truth: list[FrameTruth]) -> list[list[float]]:
    """The worker's ST context for every frame: each episode's GPS replayed through ``streams.context.replay``."""
    from roads.network import load_network
    from streams.context.replay import replay_contexts

    manifest = json.loads((root / "manifest.json").read_text())
    episode_s = float(manifest["config"]["episode_s"])
    starts = sorted((datetime.fromisoformat(e["start"]), int(e["episode"])) for e in manifest["episodes"])
    gps: dict[int, list[tuple[datetime, GpsFix]]] = defaultdict(list)
    for line in (root / "gps.jsonl").open():
        g = GpsTruth.model_validate_json(line)
        episode = next((ep for start, ep in starts if start <= g.ts < start + timedelta(seconds=episode_s + 1)), None)
        if episode is not None:
            gps[episode].append((g.delivered_at, gps_message(g)))
    by_episode: dict[int, list[int]] = defaultdict(list)
    for i, f in enumerate(truth):
        by_episode[f.episode].append(i)
    network = load_network()
    out: list[list[float]] = [[] for _ in truth]
    for episode, idx in tqdm(sorted(by_episode.items()), desc="replaying GPS for ST context", unit="episode"):
        vectors = replay_contexts(network, gps[episode], [(truth[i].vehicle_id, truth[i].captured_at) for i in idx])
        for i, vec in zip(idx, vectors, strict=True):
            out[i] = vec
    return out
