"""Alert rules replayed offline on simulator datasets: tuned on one world, reported on others.

SA-CLIP scores every frame of the chosen splits; each vehicle's frames then go, in capture order,
through the worker's own ``IncidentTracker`` with the rules, and the alerts are scored like the
demo's (``evaluation.alerts``). Only the rules' SA-CLIP conditions take part: triplet and kinematic
conditions need the scene graph and the GPS stream, which ``fleetscope demo --evaluate`` runs. Each
vehicle's incidents count as separate alerts here (the alert sink merges vehicles on one segment).

Thresholds are chosen on the tuning replay (``sim.seeds.ALERT_TUNING``: the benchmark's train and val
splits) and reported on worlds that played no part in training or tuning (``sim.seeds.ALERT_HELD_OUT``),
side by side, with the spread between the held-out worlds.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from alerts.rules import Rule, RuleSet
from evaluation.alerts import AlertReport, RaisedAlert, score_alerts
from fusion.incidents import IncidentTracker
from models.sa_clip import SAClip
from records.messages import AnomalyResult, Scene
from sim.truth import AnomalyEvent, FrameTruth
from streams.inference.outputs import anomaly_result
from training.dataset import FrameSet

Log = Callable[[str], None]


def anomaly_results(sa: SAClip, frames: FrameSet, idx: np.ndarray, batch: int = 256) -> list[AnomalyResult]:
    """SA-CLIP's anomaly output for frames ``idx``, as the worker puts it into a scene."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(idx), batch):
            scores, relations = sa(frames.images(idx[start : start + batch], sa.image_cfg))
            out += [anomaly_result(s, r) for s, r in zip(scores.tolist(), relations.numpy(), strict=True)]
    return out


def raised_alerts(scenes: Iterable[Scene], rules: RuleSet, cooldown_s: float) -> list[RaisedAlert]:
    """The alerts the worker's incident tracker raises on ``scenes`` (each vehicle's in capture order),
    with every frame each alert came to stand on."""
    tracker = IncidentTracker(rules, cooldown_s)
    raised: dict[str, tuple[str, set[str]]] = {}
    for scene in scenes:
        for alert in tracker.observe(scene, scene.kinematics.events if scene.kinematics else ()):
            _, shown = raised.setdefault(alert.alert_id, (alert.type, set()))
            shown.update(alert.evidence["frame_ids"])
    return [RaisedAlert(alert_id, t, tuple(sorted(shown))) for alert_id, (t, shown) in raised.items()]


def replay_rules(
    sa: SAClip | list[AnomalyResult], frames: FrameSet, idx: np.ndarray, rules: RuleSet, cooldown_s: float, log: Log
) -> AlertReport:
    """Alerts the rules raise on frames ``idx`` (SA-CLIP conditions only), scored against the dataset's truth.

    ``sa`` is the model, or its results for ``idx`` already computed (``anomaly_results``)."""
    if isinstance(sa, SAClip):
        log(f"scoring {len(idx)} frames with SA-CLIP ...")
        results = anomaly_results(sa, frames, idx)
    else:
        results = sa
    order = sorted(range(len(idx)), key=lambda n: (frames.truth[idx[n]].episode, frames.truth[idx[n]].captured_at))
    scenes = []
    for n in order:
        truth = frames.truth[idx[n]]
        scene = Scene(
            frame_id=truth.frame_id,
            vehicle_id=f"{truth.vehicle_id}-e{truth.episode}",  # episodes reuse vehicle ids
            captured_at=truth.captured_at,
            gps=None,
            cell_id=None,
            aspects={},
            anomaly=results[n],
            objects=[],
            triplets=[],
            ingested_at=truth.captured_at,
            inferred_at=truth.captured_at,
        )
        scenes.append(scene)
    alerts = raised_alerts(scenes, rules, cooldown_s)
    with (frames.root / "events.jsonl").open() as f:
        events = [AnomalyEvent.model_validate(json.loads(line)) for line in f]
    persistence_k = {r.type: r.persistence.k for r in rules.rules}
    return score_alerts(alerts, {frames.truth[i].frame_id: frames.truth[i] for i in idx}, events, persistence_k)


def side_by_side(reports: dict[str, AlertReport], held_out: list[str]) -> str:
    """Precision, recall and median detection latency by type for each replay, and the spread (max - min)
    of precision and recall over the ``held_out`` replays."""

    def fmt(x: float | None, spec: str = ".2f") -> str:
        return "-" if x is None else format(x, spec)

    names = list(reports)
    head = "| type | " + " | ".join(f"{n}: P / R / latency (incidents)" for n in names) + " | held-out spread P / R |"
    lines = [head, "|---|" + "---|" * (len(names) + 1)]
    types = sorted(next(iter(reports.values())).scored)
    for t in [*types, "(any type)"]:
        scores = {n: r.any_type if t == "(any type)" else r.by_type[t] for n, r in reports.items()}
        cells = [
            f"{fmt(s.precision)} / {fmt(s.recall)} / {fmt(s.median_latency_s, '.1f')} s ({s.incidents})"
            for s in scores.values()
        ]
        spread = []
        for metric in ("precision", "recall"):
            values = [getattr(scores[n], metric) for n in held_out]
            known = [v for v in values if v is not None]
            spread.append(fmt(max(known) - min(known)) if len(known) == len(values) and known else "-")
        lines.append(f"| {t} | " + " | ".join(cells) + f" | {spread[0]} / {spread[1]} |")
    return "\n".join(lines)


# From 0.1: an SA-CLIP scored against the normal prompts alone (models.sa_clip) puts its anomalies lower.
MIN_SCORES = (0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
MIN_SHARES = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8)


def tune_thresholds(
    results: list[AnomalyResult], frames: FrameSet, idx: np.ndarray, rules: RuleSet, cooldown_s: float, types: list[str]
) -> tuple[RuleSet, dict[str, float]]:
    """Grid search of each type's SA-CLIP ``min_score`` (and ``min_share`` where grouped), one type after the
    other, for the best F1 of that type on this replay; returns the tuned rules and each type's F1."""
    best_f1: dict[str, float] = {}
    for rule_type in types:
        rule = next(r for r in rules.rules if r.type == rule_type)
        at = next(n for n, c in enumerate(rule.any) if c.anomaly is not None)
        condition = rule.any[at].anomaly
        assert condition is not None
        shares = MIN_SHARES if condition.grouped_with else (0.0,)
        best: tuple[float, RuleSet] | None = None
        for min_score in MIN_SCORES:
            for min_share in shares:
                tuned = condition.model_copy(update={"min_score": min_score, "min_share": min_share})
                conditions = list(rule.any)
                conditions[at] = rule.any[at].model_copy(update={"anomaly": tuned})
                candidate = _replace(rules, rule.model_copy(update={"any": tuple(conditions)}))
                f1 = _f1(replay_rules(results, frames, idx, candidate, cooldown_s, lambda m: None), rule_type)
                if best is None or f1 > best[0]:
                    best = (f1, candidate)
        assert best is not None
        best_f1[rule_type], rules = best
    return rules, best_f1


def _replace(rules: RuleSet, rule: Rule) -> RuleSet:
    return rules.model_copy(update={"rules": tuple(rule if r.type == rule.type else r for r in rules.rules)})


def _f1(report: AlertReport, rule_type: str) -> float:
    p, r = report.by_type[rule_type].precision or 0.0, report.by_type[rule_type].recall or 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def thresholds(rules: RuleSet, types: list[str]) -> str:
    """The SA-CLIP thresholds of ``types``, one line each, as they would be written in rules.yaml."""
    lines = []
    for r in rules.rules:
        for c in r.any:
            if r.type in types and c.anomaly is not None:
                share = f", min_share: {c.anomaly.min_share}" if c.anomaly.grouped_with else ""
                lines.append(f"  {r.type}: min_score: {c.anomaly.min_score}{share}")
    return "\n".join(lines)


def replay_scenes(
    scenes: Sequence[Scene],
    frames: Mapping[str, FrameTruth],
    events: Sequence[AnomalyEvent],
    rules: RuleSet,
    cooldown_s: float,
) -> AlertReport:
    """Alerts the rules raise on scenes the whole pipeline produced (every condition: SA-CLIP, scene graph,
    objects in our path, kinematics), replayed per vehicle in capture order through the worker's tracker and
    scored against the truth of ``frames`` (by frame id). Each vehicle's incidents count as separate alerts."""
    unique = {s.frame_id: s for s in scenes}.values()  # a scene emitted twice counts once
    alerts = raised_alerts(sorted(unique, key=lambda s: (s.vehicle_id, s.captured_at)), rules, cooldown_s)
    processed = {s.frame_id: frames[s.frame_id] for s in scenes if s.frame_id in frames}
    return score_alerts(alerts, processed, events, {r.type: r.persistence.k for r in rules.rules})


OBJECT_MIN_SCORES = (0.4, 0.5, 0.6, 0.7, 0.8)
OBJECT_AHEAD_M = (20.0, 35.0, 50.0)
OBJECT_LATERAL_M = (1.75, 2.5, 3.0)
PERSISTENCE_KN = ((1, 1), (2, 3), (2, 4))
OBJECT_MIN_FACING = (0.5, 0.7, 0.8, 0.9, 0.95)  # only for a condition that has min_facing


def tune_object_conditions(
    scenes: Sequence[Scene],
    frames: Mapping[str, FrameTruth],
    events: Sequence[AnomalyEvent],
    rules: RuleSet,
    cooldown_s: float,
) -> tuple[RuleSet, dict[str, float]]:
    """Grid search, for each rule with an object condition, of that condition (score, distance ahead, width
    of our path, and facing where it has ``min_facing``) and the rule's persistence, for the best F1 of its
    type on these scenes (the first best in grid order on ties); a condition no setting gets an F1 above 0
    with is left out, and the rule keeps its persistence. Returns the tuned rules and each tuned type's F1."""
    best_f1: dict[str, float] = {}
    for rule in list(rules.rules):
        at = next((n for n, c in enumerate(rule.any) if c.object is not None), None)
        if at is None:
            continue
        condition = rule.any[at].object
        assert condition is not None
        best: tuple[float, RuleSet] | None = None
        facings = OBJECT_MIN_FACING if condition.min_facing is not None else (None,)
        grid = itertools.product(OBJECT_MIN_SCORES, OBJECT_AHEAD_M, OBJECT_LATERAL_M, facings, PERSISTENCE_KN)
        for min_score, ahead_m, lateral_m, min_facing, (k, n) in grid:
            tuned = condition.model_copy(
                update={"min_score": min_score, "ahead_m": ahead_m, "lateral_m": lateral_m, "min_facing": min_facing}
            )
            conditions = list(rule.any)
            conditions[at] = rule.any[at].model_copy(update={"object": tuned})
            persistence = rule.persistence.model_copy(update={"k": k, "n": n})
            candidate = _replace(rules, rule.model_copy(update={"any": tuple(conditions), "persistence": persistence}))
            f1 = _f1(replay_scenes(scenes, frames, events, candidate, cooldown_s), rule.type)
            if best is None or f1 > best[0]:
                best = (f1, candidate)
        assert best is not None
        best_f1[rule.type], rules = best
        if best[0] == 0:  # no setting finds one: the condition would only raise false alerts
            rules = _replace(rules, rule.model_copy(update={"any": rule.any[:at] + rule.any[at + 1 :]}))
    return rules, best_f1


def object_thresholds(rules: RuleSet) -> str:
    """The object conditions and persistence of the rules that have one, as they would be written in rules.yaml."""
    lines = []
    for r in rules.rules:
        for c in r.any:
            if (o := c.object) is not None:
                p = r.persistence
                facing = "" if o.min_facing is None else f", min_facing: {o.min_facing}"
                lines.append(
                    f"  {r.type}: object: {{label: {o.label}, min_score: {o.min_score}, ahead_m: {o.ahead_m},"
                    f" lateral_m: {o.lateral_m}{facing}}}; persistence: {{k: {p.k}, n: {p.n}}}"
                )
    return "\n".join(lines)
