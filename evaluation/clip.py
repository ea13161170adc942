"""ST-CLIP and SA-CLIP against their baselines on the benchmark's held-out test episodes (synthetic data).

- Aspects: zero-shot prompts, CoOp, CoCoOp-style and ST-CLIP at k = 1, 4, 16 shots per class,
  all on the same frozen base CLIP and the same shots (``training.few_shot``); accuracy and
  macro-F1 per aspect, each the mean over ``DRAWS`` draws of shots with the spread. Beside them a
  clock-and-calendar baseline: the nearest training shot by time of day and weekday alone, which
  shows how much the ST context could give away without looking at the image.
- Relations (VSR-style): for every true relation sentence of a test frame and its hard negative,
  does the model score the true one higher? Base CLIP against SA-CLIP, split by whether the
  negative is true of some image SA-CLIP trained on ("image-grounded": the text alone cannot know it
  is false here) or never occurs in training (a text prior can win those).
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

from alerts.rules import RuleSet
from evaluation.real_photos import Photo, aspect_contradictions, aspects_said, rule_matches
from models.checkpoints import BACKBONE_FILE, load_checkpoint
from models.clip_backbone import BaseClip, VisionTransformer, tokenize
from models.sa_clip import SAClip
from models.vocab import ASPECTS, ST_CONTEXT_FIELDS
from sim.export import ExportConfig
from sim.truth import FrameTruth
from training.captions import relation_captions, true_relations
from training.clip_training import Log
from training.dataset import ALERT_WORLDS, BENCHMARK, CORPUS, FrameSet, ensure_export, load_frames
from training.few_shot import (
    CANDIDATES,
    METHODS,
    Features,
    aspect_scores,
    frozen_features,
    image_features,
    predict,
    predict_zero_shot,
    sample_shots,
    train_prompts,
    zero_shot_classes,
)

# The aspects the ST context should lift (the segment's road class and lanes give scene type and road
# width, its traffic window congestion and accessibility): issue 21's target is +5 F1 points on each.
CONTEXT_ASPECTS = ("scene_type", "road_width", "accessibility", "congestion")
TARGET_GAIN_F1 = 0.05
TARGET_AUC = 0.80
TARGET_GROUNDED = 0.90  # SA-CLIP's relation score on image-grounded pairs
DRAWS = 3  # draws of shots per k; every few-shot figure is their mean
# k = 2 and 8 are left out since 3 draws came in: the evaluation stays under an hour on 2 cores.
EVAL_SHOTS = (1, 4, 16)
CLOCK_FIELDS = ("hour_sin", "hour_cos", "weekday_norm")
CLOCK_BASELINE = "clock-calendar 1-NN"
NO_GPS = "st_clip, no GPS"  # ST-CLIP given the all-zero "no context" vector for every test frame


@dataclass
class ClipReport:
    """Measured figures of one evaluation run (synthetic benchmark, test split)."""

    test_frames: int
    test_episodes: int = 0
    # {method, shots, draw, aspect, accuracy, f1}; zero-shot has shots 0 and one draw
    aspects: list[dict[str, Any]] = field(default_factory=list)
    relation_pairs: int = 0
    relation_pair_counts: dict[str, int] = field(default_factory=dict)
    relation_accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> kind -> accuracy
    anomaly_auc: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # model -> source -> subset
    anomaly_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> subset -> frames
    wall_s: float = 0.0

    def draws(self, method: str, shots: int, aspect: str, metric: str = "f1") -> list[float]:
        """One figure per draw of shots."""
        return [
            r[metric] for r in self.aspects if r["method"] == method and r["shots"] == shots and r["aspect"] == aspect
        ]

    def f1(self, method: str, shots: int, aspect: str) -> float:
        """Mean macro-F1 over the draws of shots."""
        return float(np.mean(self.draws(method, shots, aspect)))

    def cell(self, method: str, shots: int, aspect: str) -> str:
        f1, acc = self.draws(method, shots, aspect), self.draws(method, shots, aspect, "accuracy")
        spread = f" ±{np.std(f1):.3f}" if len(f1) > 1 else ""
        return f"{np.mean(f1):.3f}{spread} ({np.mean(acc):.3f})"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        """The report as tables (the model card embeds this text)."""
        lines = [
            f"Benchmark test split: {self.test_frames} frames from {self.test_episodes} episodes that share no"
            f" date, hour, weather or incident with the training and val episodes (simulator seed {BENCHMARK.seed};"
            " synthetic).",
            "",
            f"**Aspects, macro-F1, mean ± standard deviation over {DRAWS} draws of shots (mean accuracy in brackets)**",
            "",
            "| method | k | " + " | ".join(ASPECTS) + " |",
            "|---|---|" + "---|" * len(ASPECTS),
        ]
        rows = dict.fromkeys((r["method"], r["shots"]) for r in self.aspects)
        for method, shots in rows:
            cells = [self.cell(method, shots, a) for a in ASPECTS]
            lines.append(f"| {method} | {shots or '-'} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"{CLOCK_BASELINE}: each test frame takes the labels of the training shot nearest in time of day and"
            f" weekday (the ST context's clock and calendar, nothing else). {NO_GPS}: the ST-CLIP of the row"
            " above it on the same test frames, each sent with the all-zero context of a frame without a GPS fix.",
        ]
        lines += ["", "**ST-CLIP minus CoOp, macro-F1 points (means over the draws)**", ""]
        lines += ["| k | " + " | ".join(ASPECTS) + " |"]
        lines.append("|---|" + "---|" * len(ASPECTS))
        for k in EVAL_SHOTS:
            gains = [100 * (self.f1("st_clip", k, a) - self.f1("coop", k, a)) for a in ASPECTS]
            lines.append(f"| {k} | " + " | ".join(f"{g:+.1f}" for g in gains) + " |")
        pairs = ", ".join(f"{k} {v}" for k, v in self.relation_pair_counts.items())
        lines += [
            "",
            f"**Relations** (VSR-style, {self.relation_pairs} true/false sentence pairs: how often the true one"
            f" wins; {pairs}; image-grounded: the negative is true of some image SA-CLIP trained on)",
            "",
            "| model | " + " | ".join(next(iter(self.relation_accuracy.values()))) + " |",
            "|---|" + "---|" * len(next(iter(self.relation_accuracy.values()))),
        ]
        for model, by_kind in self.relation_accuracy.items():
            lines.append(f"| {model} | " + " | ".join(f"{v:.3f}" for v in by_kind.values()) + " |")
        lines += ["", "**Zero-shot anomaly frame AUC** (the alert worlds are held out of all training and tuning)", ""]
        subsets = list(next(iter(next(iter(self.anomaly_auc.values())).values())))
        lines += ["| frames | model | " + " | ".join(subsets) + " |", "|---|---|" + "---|" * len(subsets)]
        for source, frames in self.anomaly_counts.items():
            n = ", ".join(f"{k} {v}" for k, v in frames.items())
            for model, by_source in self.anomaly_auc.items():
                aucs = " | ".join(f"{by_source[source][subset]:.3f}" for subset in subsets)
                lines.append(f"| {source} ({n}) | {model} | {aucs} |")
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
        for kind in ("all", "image-grounded"):
            sa, base = self.relation_accuracy["sa_clip"][kind], self.relation_accuracy["base_clip"][kind]
            grounded = kind == "image-grounded"
            met = sa > base and (not grounded or sa >= TARGET_GROUNDED)
            target = f"; target >= {TARGET_GROUNDED:.2f}" if grounded else ""
            out.append(
                f"- {'met' if met else 'MISSED'}: SA-CLIP {sa:.3f} vs base CLIP {base:.3f} on the relation test"
                f" ({kind} pairs{target})"
            )
        for source, by_subset in self.anomaly_auc["sa_clip"].items():
            auc = by_subset["held-out types"]
            out.append(
                f"- {'met' if auc >= TARGET_AUC else 'MISSED'}: SA-CLIP held-out anomaly AUC {auc:.3f} on {source}"
                " (target >= 0.80)"
            )
        return out


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (probability a positive outranks a negative; ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def clock_calendar_baseline(train: Features, test: Features) -> torch.Tensor:
    """Labels of the nearest training frame by the ST context's time of day and weekday alone."""
    cols = [ST_CONTEXT_FIELDS.index(f) for f in CLOCK_FIELDS]
    nearest = torch.cdist(test.st_context[:, cols], train.st_context[:, cols]).argmin(dim=1)
    return train.labels[nearest]


def training_sentences(corpus_root: Path) -> set[str]:
    """Every relation sentence true of some frame SA-CLIP trains on (the corpus' train and val splits)."""
    with (corpus_root / "frames.jsonl").open() as f:
        truth = [FrameTruth.model_validate_json(line) for line in f]
    return true_relations([frame for frame in truth if frame.split in ("train", "val")])


@torch.no_grad()
def relation_accuracy(
    clip_model: SAClip, frames: FrameSet, idx: np.ndarray, grounded: set[str]
) -> tuple[dict[str, float], dict[str, int]]:
    """Share of (true, false) relation sentence pairs where the true one matches the image better, in all and
    by kind: triplets or ego-relative; image-grounded (the negative is in ``grounded``) or text-only."""
    clip = clip_model.clip
    wins: dict[str, list[bool]] = {"triplets": [], "ego-relative": [], "image-grounded": [], "never in training": []}
    for start in range(0, len(idx), 128):
        rows = idx[start : start + 128]
        image = F.normalize(clip.encode_image(frames.images(rows, clip_model.image_cfg)), dim=-1)
        for b, i in enumerate(rows):
            pairs = relation_captions(frames.truth[i])
            if not pairs:
                continue
            text = F.normalize(clip.encode_text(tokenize(clip_model.arch, [t for p in pairs for t in p])), dim=-1)
            sims = (text @ image[b]).view(-1, 2)
            for (true, false), (s_true, s_false) in zip(pairs, sims.tolist(), strict=True):
                won = s_true > s_false
                wins["ego-relative" if " the road" in true else "triplets"].append(won)
                wins["image-grounded" if false in grounded else "never in training"].append(won)
    every = wins["triplets"] + wins["ego-relative"]
    out = {"all": float(np.mean(every))} | {k: float(np.mean(v)) if v else float("nan") for k, v in wins.items()}
    return out, {k: len(v) for k, v in wins.items()}


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
    frames = load_frames(ensure_export(BENCHMARK), base.image_cfg.size)
    test = frames.split("test")
    report = ClipReport(test_frames=len(test), test_episodes=len({frames.truth[i].episode for i in test}))

    train_feats = frozen_features(base, frames, frames.split("train"))
    test_feats = frozen_features(base, frames, test)
    no_fix = torch.zeros_like(test_feats.st_context)
    without_context = Features(test_feats.image, test_feats.low, no_fix, test_feats.labels)
    results = [("zero-shot", 0, 0, predict_zero_shot(base, test_feats))]
    for k in EVAL_SHOTS:
        for draw in range(DRAWS):
            shots = train_feats.take(sample_shots(train_feats.labels, k, seed + draw))
            results.append((CLOCK_BASELINE, k, draw, clock_calendar_baseline(shots, test_feats)))
            for method in METHODS:
                model = train_prompts(base, method, shots, seed=seed + draw)
                results.append((method, k, draw, predict(model, test_feats)))
                if method == "st_clip":  # the same model on frames sent without a GPS fix
                    results.append((NO_GPS, k, draw, predict(model, without_context)))
                log(
                    f"aspects: {method} at {k} shots, draw {draw + 1}/{DRAWS} ({len(shots)} frames) done,"
                    f" {time.monotonic() - t0:.0f}s"
                )
    for method, k, draw, pred in results:
        for aspect, (acc, f1) in aspect_scores(pred, test_feats.labels).items():
            row = {"method": method, "shots": k, "draw": draw, "aspect": aspect, "accuracy": acc, "f1": f1}
            report.aspects.append(row)

    base_as_sa = SAClip(base.clip, base.arch, base.image_cfg).eval()
    grounded = training_sentences(ensure_export(CORPUS))
    for name, scorer in (("base_clip", base_as_sa), ("sa_clip", sa)):
        report.relation_accuracy[name], counts = relation_accuracy(scorer, frames, test, grounded)
        report.relation_pairs = counts["triplets"] + counts["ego-relative"]
        report.relation_pair_counts = counts
        log(f"relations: {name} done, {time.monotonic() - t0:.0f}s")

    sources = [(f"benchmark test (seed {BENCHMARK.seed})", frames, test)]
    for world in ALERT_WORLDS:
        w = load_frames(ensure_export(world), base.image_cfg.size)
        sources.append((f"alert world (seed {world.seed})", w, w.split("test")))
    for source, source_frames, idx in sources:
        counts, aucs = anomaly_aucs({"base_clip": base_as_sa, "sa_clip": sa}, source_frames, idx)
        report.anomaly_counts[source] = counts
        for name, by_subset in aucs.items():
            report.anomaly_auc.setdefault(name, {})[source] = by_subset
        log(f"anomaly AUC on {source} done, {time.monotonic() - t0:.0f}s")
    report.wall_s = time.monotonic() - t0
    return report


class DecodedFrames:
    """Each world's frames decoded once per input size, for the models of one comparison to share."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[Path, int], FrameSet] = {}

    def __call__(self, world: ExportConfig, size: int) -> FrameSet:
        key = (ensure_export(world), size)
        if key not in self._loaded:
            self._loaded[key] = load_frames(*key)
        return self._loaded[key]


def zero_shot_table(weights: list[Path], log: Log = print) -> str:
    """Zero-shot macro-F1 (accuracy) per aspect of the base CLIP in each of ``weights``, side by side, on the
    benchmark's val and test episodes (neither takes part in any base CLIP's training; synthetic)."""
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    decoded = DecodedFrames()
    lines = [
        f"Zero-shot aspects on the benchmark (simulator seed {BENCHMARK.seed}; synthetic), macro-F1 (accuracy)",
        "",
        "| base CLIP | episodes | frames | " + " | ".join(ASPECTS) + " | mean F1 |",
        "|---|---|---|" + "---|" * (len(ASPECTS) + 1),
    ]
    for folder in weights:
        base = load_checkpoint(folder / BACKBONE_FILE)
        assert isinstance(base, BaseClip)
        frames = decoded(BENCHMARK, base.image_cfg.size)
        for split in ("val", "test"):
            t0, idx = time.monotonic(), frames.split(split)
            feats = image_features(base, frames, idx)
            scores = aspect_scores(predict_zero_shot(base, feats), feats.labels)
            cells = [f"{f1:.3f} ({acc:.3f})" for acc, f1 in scores.values()]
            mean = float(np.mean([f1 for _, f1 in scores.values()]))
            lines.append(f"| {folder} ({base.arch}) | {split} | {len(idx)} | " + " | ".join(cells) + f" | {mean:.3f} |")
            log(f"zero-shot: {folder} on {split} done in {time.monotonic() - t0:.0f}s")
    return "\n".join(lines)


@torch.no_grad()
def zero_shot_photos(weights: list[Path], jpegs: dict[str, bytes], photos: list[Photo]) -> str:
    """Each base CLIP's zero-shot aspects on real photos, judged against their facts as ST-CLIP's answers are."""
    from models.preprocess import to_tensor_batch

    shown = [p for p in photos if p.id in jpegs]
    lines = ["Zero-shot aspects on real photos (not synthetic; a check, never tuned on)", ""]
    lines += ["| base CLIP | photos with a contradiction | contradicted facts / facts checked |", "|---|---|---|"]
    answers = []
    for folder in weights:
        base = load_checkpoint(folder / BACKBONE_FILE)
        assert isinstance(base, BaseClip)
        cfg = base.image_cfg
        images = to_tensor_batch([jpegs[p.id] for p in shown], cfg.size, cfg.mean, cfg.std)
        classes = zero_shot_classes(base, F.normalize(base.clip.encode_image(images), dim=-1))
        wrong_photos = wrong = checked = 0
        for n, photo in enumerate(shown):
            aspects = {a: labels[int(classes[n, k])] for k, (a, labels) in enumerate(ASPECTS.items())}
            bad, facts = aspect_contradictions(photo, aspects)
            wrong_photos, wrong, checked = wrong_photos + bool(bad), wrong + len(bad), checked + facts
            answers.append(
                f"  {photo.id:<16} {folder}: {aspects_said(aspects)}"
                + (f"  CONTRADICTS: {'; '.join(bad)}" if bad else "")
            )
        lines.append(f"| {folder} ({base.arch}) | {wrong_photos} of {len(shown)} | {wrong} / {checked} |")
    return "\n".join(lines + ["", *sorted(answers)])


def sa_clip_table(weights: list[Path], log: Log = print) -> str:
    """Each folder's SA-CLIP beside its base CLIP, side by side: the relation test on the benchmark's test
    episodes and the zero-shot anomaly AUC there and on the alert worlds (synthetic; none of it trained on).

    Minutes rather than ``evaluate``'s hour: for comparing SA-CLIPs, e.g. the shipped one and one
    fine-tuned on a pretrained tower, in one run."""
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    grounded = training_sentences(ensure_export(CORPUS))
    decoded = DecodedFrames()
    worlds = [BENCHMARK, *ALERT_WORLDS]
    kinds = ("all", "image-grounded", "never in training")
    lines = [
        "SA-CLIP beside its base CLIP (synthetic): relation test on the benchmark's test episodes (share of"
        " true/false sentence pairs the true one wins), held-out anomaly types' frame AUC per world",
        "",
        "| folder | model | scoring | "
        + " | ".join(f"relations {k}" for k in kinds)
        + " | "
        + " | ".join(f"held-out AUC, seed {w.seed}" for w in worlds)
        + " |",
        "|---|---|---|" + "---|" * (len(kinds) + len(worlds)),
    ]
    for folder in weights:
        base, sa = load_checkpoint(folder / BACKBONE_FILE), load_checkpoint(folder / "sa_clip.pt")
        assert isinstance(base, BaseClip) and isinstance(sa, SAClip)
        scorers = {"base_clip": SAClip(base.clip, base.arch, base.image_cfg, scoring=sa.scoring).eval(), "sa_clip": sa}
        cells: dict[str, list[str]] = {name: [] for name in scorers}
        for world in worlds:
            t0 = time.monotonic()
            frames = decoded(world, base.image_cfg.size)
            idx = frames.split("test")
            if world is BENCHMARK:
                for name, scorer in scorers.items():
                    accuracy, _ = relation_accuracy(scorer, frames, idx, grounded)
                    cells[name] += [f"{accuracy[k]:.3f}" for k in kinds]
            _, aucs = anomaly_aucs(scorers, frames, idx)
            for name in scorers:
                cells[name].append(f"{aucs[name]['held-out types']:.3f}")
            log(f"sa-clip: {folder} on seed {world.seed} done in {time.monotonic() - t0:.0f}s")
        for name, row in cells.items():
            lines.append(f"| {folder} ({base.arch}) | {name} | {sa.scoring} | " + " | ".join(row) + " |")
    return "\n".join(lines)


@torch.no_grad()
def sa_clip_photos(weights: list[Path], jpegs: dict[str, bytes], photos: list[Photo], rules: RuleSet) -> str:
    """Each folder's SA-CLIP on the real photos (every one a normal scene): its top anomaly and score per photo,
    and the photos on which it meets an SA-CLIP condition of the alert ``rules``."""
    from models.preprocess import to_tensor_batch
    from streams.inference.outputs import anomaly_result

    shown = [p for p in photos if p.id in jpegs]
    lines = [f"SA-CLIP on real photos, all normal scenes (not synthetic; a check, never tuned on; {len(shown)} photos)"]
    lines += ["", "| folder | photos meeting an alert rule's SA-CLIP condition | highest score | median score |"]
    lines.append("|---|---|---|---|")
    answers = []
    for folder in weights:
        sa = load_checkpoint(folder / "sa_clip.pt")
        assert isinstance(sa, SAClip)
        cfg = sa.image_cfg
        scores, relations = sa(to_tensor_batch([jpegs[p.id] for p in shown], cfg.size, cfg.mean, cfg.std))
        alerted = 0
        for n, photo in enumerate(shown):
            result = anomaly_result(float(scores[n]), relations[n].numpy())
            hits = rule_matches(result, rules)
            alerted += bool(hits)
            rule = f"  meets the {hits[0][0]} rule" if hits else ""
            answers.append(f"  {photo.id:<16} {folder}: {result.type} {result.score:.2f}{rule}")
        top, median = float(scores.max()), float(scores.median())
        lines.append(f"| {folder} | {alerted} of {len(shown)} | {top:.2f} | {median:.2f} |")
    return "\n".join(lines + ["", *sorted(answers)])


def anomaly_aucs(
    scorers: dict[str, SAClip], frames: FrameSet, idx: np.ndarray
) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
    """Frames per anomaly subset, and each scorer's frame AUC per subset against the normal frames of ``idx``."""
    holdout = set(json.loads((frames.root / "manifest.json").read_text())["config"]["holdout"])
    anomaly = [frames.truth[i].anomaly for i in idx]
    subsets = {
        "held-out types": [a in holdout for a in anomaly],
        **{t: [a == t for a in anomaly] for t in sorted(holdout)},
        "trained types": [a is not None and a not in holdout for a in anomaly],
    }
    counts = {"normal": anomaly.count(None)} | {k: int(sum(v)) for k, v in subsets.items() if k != "held-out types"}
    out: dict[str, dict[str, float]] = {}
    for name, scorer in scorers.items():
        scores = anomaly_scores(scorer, frames, idx)
        out[name] = {}
        for subset, positive in subsets.items():
            keep = np.array([p or a is None for p, a in zip(positive, anomaly, strict=True)])
            labels = np.array(positive)[keep].astype(int)
            out[name][subset] = auc(scores[keep], labels) if 0 < labels.sum() < len(labels) else float("nan")
    return counts, out


def choose_configuration(weights: Path, seed: int = 0, shots: int = 4, log: Log = print) -> dict[str, float]:
    """Mean macro-F1 (over aspects and ``DRAWS`` draws of shots) on the benchmark's val episodes of CoOp and the
    ST-CLIP candidates (``few_shot.CANDIDATES``; low-level tokens on a ViT base only): how the shipped
    configuration is chosen (test unseen)."""
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    base = load_checkpoint(weights / BACKBONE_FILE)
    assert isinstance(base, BaseClip)
    frames = load_frames(ensure_export(BENCHMARK), base.image_cfg.size)
    train_feats = frozen_features(base, frames, frames.split("train"))
    val_feats = frozen_features(base, frames, frames.split("val"))
    candidates = [
        m
        for m in CANDIDATES
        if m.startswith("st_clip") and (m != "st_clip_low_level" or isinstance(base.clip.visual, VisionTransformer))
    ]
    f1: dict[str, list[float]] = {m: [] for m in ("coop", *candidates)}
    for draw in range(DRAWS):
        picked = train_feats.take(sample_shots(train_feats.labels, shots, seed + draw))
        for method in f1:
            pred = predict(train_prompts(base, method, picked, seed=seed + draw), val_feats)
            f1[method].append(float(np.mean([s for _, s in aspect_scores(pred, val_feats.labels).values()])))
            log(f"{method}, draw {draw + 1}/{DRAWS}: val macro-F1 {f1[method][-1]:.3f}")
    return {m: float(np.mean(v)) for m, v in f1.items()}
