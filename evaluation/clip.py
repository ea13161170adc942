"""ST-CLIP and SA-CLIP against their baselines on the benchmark's held-out test split (synthetic data).

- Aspects: zero-shot prompts, CoOp, CoCoOp-style and ST-CLIP at k = 1, 2, 4, 8, 16 shots per class,
  all on the same frozen base CLIP and the same shots (``models.training.few_shot``); accuracy and
  macro-F1 per aspect.
- Relations (VSR-style): for every true relation sentence of a test frame and its hard negative,
  does the model score the true one higher? Base CLIP against SA-CLIP.
- Anomalies: frame-level AUC of SA-CLIP's zero-shot anomaly score (normal against anomalous
  relation prompts), on the anomaly types held out of all training, against the base CLIP with the
  same prompts.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from models.checkpoints import BACKBONE_FILE, load_checkpoint
from models.clip_backbone import BaseClip, tokenize
from models.sa_clip import SAClip
from models.training.captions import relation_captions
from models.training.clip_training import Log
from models.training.dataset import BENCHMARK_FRAMES, BENCHMARK_SEED, FrameSet, ensure_export, load_frames
from models.training.few_shot import (
    METHODS,
    SHOTS,
    aspect_scores,
    frozen_features,
    predict,
    predict_zero_shot,
    sample_shots,
    train_prompts,
)
from models.vocab import ASPECTS

CONTEXT_ASPECTS = ("congestion", "accessibility")  # the aspects that depend on spatio-temporal context
TARGET_GAIN_F1 = 0.05
TARGET_AUC = 0.80


@dataclass
class ClipReport:
    """Measured figures of one evaluation run (synthetic benchmark, test split)."""

    test_frames: int
    aspects: list[dict[str, Any]] = field(default_factory=list)  # {method, shots, aspect, accuracy, f1}
    relation_pairs: int = 0
    relation_accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> kind -> accuracy
    anomaly_auc: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> subset -> AUC
    anomaly_counts: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def f1(self, method: str, shots: int, aspect: str) -> float:
        return next(
            r["f1"] for r in self.aspects if r["method"] == method and r["shots"] == shots and r["aspect"] == aspect
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        """The report as tables (the model card embeds this text)."""
        lines = [
            f"Benchmark test split: {self.test_frames} frames (simulator seed {BENCHMARK_SEED}; synthetic).",
            "",
            "**Aspects, macro-F1 (accuracy in brackets)**",
            "",
            "| method | k | " + " | ".join(ASPECTS) + " |",
            "|---|---|" + "---|" * len(ASPECTS),
        ]
        rows: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}
        for r in self.aspects:
            rows.setdefault((r["method"], r["shots"]), {})[r["aspect"]] = (r["f1"], r["accuracy"])
        for (method, shots), by_aspect in rows.items():
            cells = [f"{by_aspect[a][0]:.3f} ({by_aspect[a][1]:.3f})" for a in ASPECTS]
            lines.append(f"| {method} | {shots or '-'} | " + " | ".join(cells) + " |")
        lines += ["", "**ST-CLIP minus CoOp, macro-F1 points**", "", "| k | " + " | ".join(ASPECTS) + " |"]
        lines.append("|---|" + "---|" * len(ASPECTS))
        for k in SHOTS:
            gains = [100 * (self.f1("st_clip", k, a) - self.f1("coop", k, a)) for a in ASPECTS]
            lines.append(f"| {k} | " + " | ".join(f"{g:+.1f}" for g in gains) + " |")
        lines += [
            "",
            f"**Relations** (VSR-style, {self.relation_pairs} true/false sentence pairs: how often the true one wins)",
            "",
            "| model | " + " | ".join(next(iter(self.relation_accuracy.values()))) + " |",
            "|---|" + "---|" * len(next(iter(self.relation_accuracy.values()))),
        ]
        for model, by_kind in self.relation_accuracy.items():
            lines.append(f"| {model} | " + " | ".join(f"{v:.3f}" for v in by_kind.values()) + " |")
        counts = ", ".join(f"{k} {v}" for k, v in self.anomaly_counts.items())
        subsets = list(next(iter(self.anomaly_auc.values())))
        lines += ["", f"**Zero-shot anomaly frame AUC** (test frames: {counts})", ""]
        lines += ["| model | " + " | ".join(subsets) + " |", "|---|" + "---|" * len(subsets)]
        for model, by_subset in self.anomaly_auc.items():
            lines.append(f"| {model} | " + " | ".join(f"{by_subset[s]:.3f}" for s in subsets) + " |")
        lines += ["", *self.verdicts(), "", f"Evaluation wall time {self.wall_s:.0f} s."]
        return "\n".join(lines)

    def verdicts(self) -> list[str]:
        """The issue's targets, each with its measured figure and whether it is met."""
        out = []
        for a in ASPECTS:
            gain = self.f1("st_clip", 4, a) - self.f1("coop", 4, a)
            need = TARGET_GAIN_F1 if a in CONTEXT_ASPECTS else 0.0
            out.append(
                f"- {'met' if gain >= need else 'MISSED'}: ST-CLIP vs CoOp at 4 shots, {a}: {100 * gain:+.1f} F1 points"
                f" (target {'>= +5' if a in CONTEXT_ASPECTS else '>= 0'})"
            )
        sa, base = self.relation_accuracy["sa_clip"]["all"], self.relation_accuracy["base_clip"]["all"]
        out.append(
            f"- {'met' if sa > base else 'MISSED'}: SA-CLIP {sa:.3f} vs base CLIP {base:.3f} on the relation test"
        )
        auc = self.anomaly_auc["sa_clip"]["held-out types"]
        out.append(
            f"- {'met' if auc >= TARGET_AUC else 'MISSED'}: SA-CLIP held-out anomaly AUC {auc:.3f} (target >= 0.80)"
        )
        return out


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (probability a positive outranks a negative; ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


@torch.no_grad()
def relation_accuracy(clip_model: SAClip, frames: FrameSet, idx: np.ndarray) -> tuple[dict[str, float], int]:
    """Share of (true, false) relation sentence pairs where the true one matches the image better."""
    clip = clip_model.clip
    wins: dict[str, list[bool]] = {"triplets": [], "ego-relative": []}
    for start in range(0, len(idx), 128):
        rows = idx[start : start + 128]
        image = F.normalize(clip.encode_image(frames.images(rows, clip_model.image_cfg)), dim=-1)
        for b, i in enumerate(rows):
            pairs = relation_captions(frames.truth[i])
            if not pairs:
                continue
            text = F.normalize(clip.encode_text(tokenize(clip_model.arch, [t for p in pairs for t in p])), dim=-1)
            sims = (text @ image[b]).view(-1, 2)
            for (true, _), (s_true, s_false) in zip(pairs, sims.tolist(), strict=True):
                kind = "ego-relative" if " the road" in true else "triplets"
                wins[kind].append(s_true > s_false)
    every = wins["triplets"] + wins["ego-relative"]
    out = {"all": float(np.mean(every))} | {k: float(np.mean(v)) for k, v in wins.items()}
    return out, len(every)


@torch.no_grad()
def anomaly_scores(model: SAClip, frames: FrameSet, idx: np.ndarray) -> np.ndarray:
    return torch.cat(
        [model(frames.images(idx[s : s + 128], model.image_cfg))[0] for s in range(0, len(idx), 128)]
    ).numpy()


def evaluate(weights: Path, seed: int = 0, log: Log = print) -> ClipReport:
    """Run every comparison of the module docstring on the checkpoints in ``weights``."""
    t0 = time.monotonic()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    base = load_checkpoint(weights / BACKBONE_FILE)
    sa = load_checkpoint(weights / "sa_clip.pt")
    assert isinstance(base, BaseClip) and isinstance(sa, SAClip)
    frames = load_frames(ensure_export(BENCHMARK_SEED, BENCHMARK_FRAMES), base.image_cfg.size)
    test = frames.split("test")
    report = ClipReport(test_frames=len(test))

    train_feats = frozen_features(base, frames, frames.split("train"))
    test_feats = frozen_features(base, frames, test)
    results = [("zero-shot", 0, predict_zero_shot(base, test_feats))]
    for k in SHOTS:
        shots = train_feats.take(sample_shots(train_feats.labels, k, seed))
        for method in METHODS:
            model = train_prompts(base, method, shots, seed=seed)
            results.append((method, k, predict(model, test_feats)))
            log(f"aspects: {method} at {k} shots ({len(shots)} frames) done, {time.monotonic() - t0:.0f}s")
    for method, k, pred in results:
        for aspect, (acc, f1) in aspect_scores(pred, test_feats.labels).items():
            report.aspects.append({"method": method, "shots": k, "aspect": aspect, "accuracy": acc, "f1": f1})

    base_as_sa = SAClip(base.clip, base.arch, base.image_cfg).eval()
    for name, scorer in (("base_clip", base_as_sa), ("sa_clip", sa)):
        report.relation_accuracy[name], report.relation_pairs = relation_accuracy(scorer, frames, test)
        log(f"relations: {name} done, {time.monotonic() - t0:.0f}s")

    holdout = set(_holdout(frames))
    anomaly = [frames.truth[i].anomaly for i in test]
    subsets = {
        "held-out types": [a in holdout for a in anomaly],
        **{t: [a == t for a in anomaly] for t in sorted(holdout)},
        "trained types": [a is not None and a not in holdout for a in anomaly],
    }
    report.anomaly_counts = {"normal": anomaly.count(None)} | {
        k: int(sum(v)) for k, v in subsets.items() if k != "held-out types"
    }
    for name, scorer in (("base_clip", base_as_sa), ("sa_clip", sa)):
        scores = anomaly_scores(scorer, frames, test)
        report.anomaly_auc[name] = {}
        for subset, positive in subsets.items():
            keep = np.array([p or a is None for p, a in zip(positive, anomaly, strict=True)])
            report.anomaly_auc[name][subset] = auc(scores[keep], np.array(positive)[keep].astype(int))
    report.wall_s = time.monotonic() - t0
    return report


def _holdout(frames: FrameSet) -> list[str]:
    return list(json.loads((frames.root / "manifest.json").read_text())["config"]["holdout"])
