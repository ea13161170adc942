"""The evaluation protocol: which worlds train, tune and report, kept apart (synthetic data)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from evaluation.alert_rules import side_by_side, tune_thresholds
from evaluation.alerts import AlertReport, TypeScore
from evaluation.clip import clock_calendar_baseline
from fleetscope import demo
from fleetscope.cli import demo as demo_command
from models.vocab import ST_CONTEXT_DIM, ST_CONTEXT_FIELDS
from sim import seeds
from sim.vocab import ANOMALY_TYPES
from training.dataset import ALERT_WORLDS, BENCHMARK, CORPUS
from training.few_shot import Features


def test_demo_evaluate_runs_by_default_on_a_world_never_used_to_train_or_tune() -> None:
    option = next(p for p in demo_command.params if p.name == "seed")
    defaults = {option.default, inspect.signature(demo.run).parameters["seed"].default}
    assert defaults == {seeds.DEMO}
    assert seeds.DEMO not in (*seeds.TRAINING, *seeds.TUNING, *seeds.ALERT_HELD_OUT)


def test_alert_figures_come_from_at_least_two_worlds_apart_from_training_and_tuning() -> None:
    held_out = {w.seed for w in ALERT_WORLDS}
    assert len(held_out) >= 2
    assert not held_out & {*seeds.TRAINING, *seeds.TUNING}
    assert {BENCHMARK.seed, CORPUS.seed} == set(seeds.TRAINING) and seeds.ALERT_TUNING == BENCHMARK.seed
    # Every episode of a held-out world is reported on; the benchmark reports on whole test episodes.
    assert all(w.split_fractions == (0.0, 0.0, 1.0) for w in ALERT_WORLDS)
    assert BENCHMARK.split_unit == "episode"


def _features(hours: list[float], labels: list[int]) -> Features:
    ctx = torch.zeros(len(hours), ST_CONTEXT_DIM)
    ctx[:, ST_CONTEXT_FIELDS.index("hour_sin")] = torch.sin(2 * torch.pi * torch.tensor(hours) / 24)
    ctx[:, ST_CONTEXT_FIELDS.index("hour_cos")] = torch.cos(2 * torch.pi * torch.tensor(hours) / 24)
    ctx[:, ST_CONTEXT_FIELDS.index("speed_norm")] = torch.rand(len(hours))  # ignored by the baseline
    labels_t = torch.tensor(labels)[:, None].repeat(1, 6)
    return Features(torch.zeros(len(hours), 4), torch.zeros(len(hours), 4), ctx, labels_t)


def test_the_clock_calendar_baseline_copies_the_labels_of_the_nearest_hour() -> None:
    train = _features([1.0, 8.0, 17.0, 23.5], [0, 1, 2, 3])
    test = _features([0.2, 7.0, 16.0, 18.0], [9, 9, 9, 9])
    assert clock_calendar_baseline(train, test)[:, 0].tolist() == [3, 1, 2, 2]


def test_side_by_side_shows_each_world_and_the_spread_between_held_out_ones() -> None:
    def report(p: tuple[int, int], r: tuple[int, int]) -> AlertReport:
        scores = {t: TypeScore() for t in ANOMALY_TYPES}
        scores["collision"] = TypeScore(alerts=p[1], correct=p[0], incidents=r[1], detected=r[0], latencies_s=[2.0])
        return AlertReport(scores, TypeScore())

    text = side_by_side(
        {"tuning": report((9, 10), (9, 10)), "a": report((8, 10), (4, 8)), "b": report((6, 10), (6, 8))}, ["a", "b"]
    )
    row = next(line for line in text.splitlines() if line.startswith("| collision"))
    assert "0.90 / 0.90 / 2.0 s (10)" in row and "0.80 / 0.50 / 2.0 s (8)" in row
    assert row.endswith("| 0.20 / 0.25 |")


def test_threshold_tuning_only_changes_the_types_it_is_given(tmp_path) -> None:
    from alerts.rules import load_rules
    from evaluation.alert_rules import anomaly_results
    from models.checkpoints import load_checkpoint
    from models.shipped import SHIPPED_DIR
    from sim.export import ExportConfig
    from training.dataset import ensure_export, load_frames

    sa = load_checkpoint(SHIPPED_DIR / "sa_clip.pt")
    frames = load_frames(ensure_export(ExportConfig(seed=5, frames=300), root=tmp_path / "d"), sa.image_cfg.size)
    idx = np.arange(len(frames.truth))
    rules = load_rules()
    tuned, f1 = tune_thresholds(anomaly_results(sa, frames, idx), frames, idx, rules, 60, ["obstacle"])
    assert set(f1) == {"obstacle"} and 0.0 <= f1["obstacle"] <= 1.0
    changed = {a.type for a, b in zip(rules.rules, tuned.rules, strict=True) if a != b}
    assert changed <= {"obstacle"}


def test_the_clip_report_gives_means_over_draws_and_compares_st_clip_with_coop_on_them() -> None:
    from evaluation.clip import CLOCK_BASELINE, ClipReport
    from evaluation.clip import EVAL_SHOTS as SHOTS
    from models.vocab import ASPECTS

    report = ClipReport(test_frames=10, test_episodes=2)
    for k in SHOTS:
        for draw, (coop, st) in enumerate([(0.5, 0.6), (0.7, 0.6), (0.6, 0.9)]):
            for method, f1 in (("coop", coop), ("cocoop", coop), ("st_clip", st), (CLOCK_BASELINE, 0.1)):
                for a in ASPECTS:
                    report.aspects.append(
                        {"method": method, "shots": k, "draw": draw, "aspect": a, "accuracy": f1, "f1": f1}
                    )
    report.relation_accuracy = {m: {"all": 0.6, "image-grounded": 0.55} for m in ("base_clip", "sa_clip")}
    report.anomaly_counts = {"world": {"normal": 5, "wrong_way": 2}}
    report.anomaly_auc = {m: {"world": {"held-out types": 0.7}} for m in ("base_clip", "sa_clip")}
    text = report.markdown()
    assert report.f1("st_clip", 4, "congestion") == pytest.approx(0.7) and report.f1("coop", 4, "congestion") == 0.6
    assert "| 4 | " + " | ".join(["+10.0"] * len(ASPECTS)) + " |" in text
    assert "0.700 ±0.141 (0.700)" in text  # st_clip: mean and standard deviation of 0.6, 0.6, 0.9
    assert "MISSED: SA-CLIP held-out anomaly AUC 0.700 on world" in text
