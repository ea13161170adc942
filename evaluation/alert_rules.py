"""Alert rules replayed offline on a simulator dataset, to choose thresholds without running the stack.

SA-CLIP scores every frame of the chosen splits; each vehicle's frames then go, in capture order,
through the worker's own ``IncidentTracker`` with the rules, and the alerts are scored like the
demo's (``evaluation.alerts``). Only the rules' SA-CLIP conditions take part: triplet and kinematic
conditions need the scene graph and the GPS stream, which ``fleetscope demo --evaluate`` runs. Each
vehicle's incidents count as separate alerts here (the alert sink merges vehicles on one segment).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import torch

from alerts.incidents import IncidentTracker
from alerts.rules import RuleSet
from evaluation.alerts import AlertReport, RaisedAlert, score_alerts
from models.sa_clip import SAClip
from models.training.dataset import FrameSet
from sim.truth import AnomalyEvent
from streams.inference.outputs import anomaly_result
from streams.schema import AnomalyResult, Scene

Log = Callable[[str], None]


def anomaly_results(sa: SAClip, frames: FrameSet, idx: np.ndarray, batch: int = 256) -> list[AnomalyResult]:
    """SA-CLIP's anomaly output for frames ``idx``, as the worker puts it into a scene."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(idx), batch):
            scores, relations = sa(frames.images(idx[start : start + batch], sa.image_cfg))
            out += [anomaly_result(s, r) for s, r in zip(scores.tolist(), relations.numpy(), strict=True)]
    return out


def replay_rules(
    sa: SAClip, frames: FrameSet, idx: np.ndarray, rules: RuleSet, cooldown_s: float, log: Log
) -> AlertReport:
    """Alerts the rules raise on frames ``idx`` (SA-CLIP conditions only), scored against the dataset's truth."""
    log(f"scoring {len(idx)} frames with SA-CLIP ...")
    results = anomaly_results(sa, frames, idx)
    tracker = IncidentTracker(rules, cooldown_s)
    raised: dict[str, tuple[str, set[str]]] = {}
    order = sorted(range(len(idx)), key=lambda n: (frames.truth[idx[n]].episode, frames.truth[idx[n]].captured_at))
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
        for alert in tracker.observe(scene):
            _, shown = raised.setdefault(alert.alert_id, (alert.type, set()))
            shown.update(alert.evidence["frame_ids"])
    alerts = [RaisedAlert(alert_id, t, tuple(sorted(shown))) for alert_id, (t, shown) in raised.items()]
    with (frames.root / "events.jsonl").open() as f:
        events = [AnomalyEvent.model_validate(json.loads(line)) for line in f]
    persistence_k = {r.type: r.persistence.k for r in rules.rules}
    return score_alerts(alerts, {frames.truth[i].frame_id: frames.truth[i] for i in idx}, events, persistence_k)
