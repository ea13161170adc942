"""Kinematics against the simulator's ground truth on the benchmark's test split (synthetic data).

Each test vehicle's frames are replayed in order through ``kinematics.tracking`` with the GPS speed
and heading the worker attaches to each frame (the ST context of ``training.dataset``).
Objects come from two sources, in the same run:

- **detected**: the scene-graph model's objects (score >= ``OBJECT_THRESHOLD``), what the pipeline
  has; an object counts where it overlaps a true object of its class with IoU >= 0.5 (the others are
  not scored). These are the kinematics figures;
- **true boxes (geometry check)**: the simulator's boxes and classes. They only invert the renderer's
  own camera, so they check ground-plane geometry, tracking and motion code, not what a user gets.

Figures: ego speed MAE and travelled-distance error (GPS), object speed MAE, relative distance
error, movement-direction accuracy (same way / towards us / left / right / stationary), and the
accuracy of the two pair questions (which of two objects is closer; do two moving objects move the
same way, opposite ways or across).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from kinematics.ground import object_positions
from kinematics.tracking import (
    CONFIRM_SIGHTINGS,
    TrackedObject,
    VehicleTracker,
    direction_label,
    relative_direction,
)
from models.scene_graph import SceneGraphModel, box_iou
from models.vocab import OBJECT_CLASSES, ST_CONTEXT_FIELDS
from sim.truth import FrameTruth, ObjectTruth
from training.clip_training import Log
from training.dataset import FrameSet
from training.scene_graph_training import GraphTruth

OBJECT_THRESHOLD = 0.3
TRUE_BOXES = "true boxes (geometry check)"
MOVING_MPS = 2.0
TARGET_EGO_SPEED_MAE_KMH = 2.0
TARGET_DIRECTION_ACCURACY = 0.90
_SPEED = ST_CONTEXT_FIELDS.index("speed_norm")
_SIN, _COS = ST_CONTEXT_FIELDS.index("heading_sin"), ST_CONTEXT_FIELDS.index("heading_cos")
_HAS = ST_CONTEXT_FIELDS.index("has_context")


@dataclass
class ObjectFigures:
    """Kinematics of tracked objects from one source of boxes."""

    objects: int = 0  # scored object sightings with a speed and direction (of a confirmed track)
    sightings: int = 0  # scored object sightings in all
    speed_mae_kmh: float = float("nan")
    distance_rel_error_median: float = float("nan")
    distance_rel_error_mean: float = float("nan")
    direction_accuracy: float = float("nan")
    closer_accuracy: float = float("nan")
    closer_pairs: int = 0
    relative_direction_accuracy: float = float("nan")
    relative_direction_pairs: int = 0


@dataclass
class KinematicsReport:
    frames: int
    ego_frames: int
    ego_speed_mae_kmh: float
    ego_distance_rel_error: float
    ego_drives: int
    sources: dict[str, ObjectFigures] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [
            f"Kinematics on the benchmark test split (synthetic): {self.frames} frames, {self.ego_drives} drives",
            "",
            f"- ego speed MAE (GPS fix attached to each frame, {self.ego_frames} frames): "
            f"**{self.ego_speed_mae_kmh:.2f} km/h** (target <= {TARGET_EGO_SPEED_MAE_KMH:.0f})",
            f"- ego travelled distance over each drive, mean relative error: {self.ego_distance_rel_error:.1%}",
            "",
            "| objects from | scored (of sightings) | speed MAE km/h | distance rel. error (median / mean) "
            "| direction accuracy | closer-object accuracy (pairs) | relative direction accuracy (pairs) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, f in self.sources.items():
            lines.append(
                f"| {name} | {f.objects} ({f.sightings}) | {f.speed_mae_kmh:.1f} | {f.distance_rel_error_median:.1%} / "
                f"{f.distance_rel_error_mean:.1%} | **{f.direction_accuracy:.1%}** | {f.closer_accuracy:.1%} "
                f"({f.closer_pairs}) | {f.relative_direction_accuracy:.1%} ({f.relative_direction_pairs}) |"
            )
        lines.append(
            f"\nDirection target: >= {TARGET_DIRECTION_ACCURACY:.0%}. Speed and direction are scored on the sightings "
            f"of confirmed tracks (seen {CONFIRM_SIGHTINGS} times), distances on all sightings. The detected row is"
            " what the pipeline measures; the true-box row only inverts the renderer's camera (a geometry check)."
        )
        return "\n".join(lines)


def ego_motion(st_context: np.ndarray) -> tuple[float | None, float | None]:
    """GPS speed (m/s) and compass heading (degrees) of the fix the worker attached to a frame; None without one."""
    if st_context[_HAS] <= 0:
        return None, None
    heading = math.degrees(math.atan2(st_context[_SIN], st_context[_COS])) % 360
    return float(st_context[_SPEED]) * 30.0, heading


def drives(frames: FrameSet, idx: np.ndarray) -> list[tuple[tuple[int, str], list[int]]]:
    """The frames ``idx`` grouped into drives, (episode, vehicle) -> frame indices in capture order, sorted by key."""
    grouped: dict[tuple[int, str], list[int]] = defaultdict(list)
    for i in idx:
        f = frames.truth[int(i)]
        grouped[f.episode, f.vehicle_id].append(int(i))
    return [
        (key, sorted(members, key=lambda i: frames.truth[i].captured_at)) for key, members in sorted(grouped.items())
    ]


def detected(out: dict[str, torch.Tensor], j: int) -> tuple[np.ndarray, list[str], list[float | None]]:
    """Boxes, labels and facing probabilities of the ``j``-th frame's objects scoring at least
    OBJECT_THRESHOLD in scene-graph ``out``."""
    scores, classes = out["class_logits"][j].softmax(-1)[:, :-1].max(-1)
    keep = (scores >= OBJECT_THRESHOLD).numpy()
    facing: list[float | None] = out["facing_logits"][j].sigmoid().numpy()[keep].tolist()
    return out["boxes"][j].numpy()[keep], [OBJECT_CLASSES[c] for c in classes.numpy()[keep]], facing


def _matched(boxes: np.ndarray, labels: list[str], truth: FrameTruth, true_boxes: np.ndarray) -> dict[int, ObjectTruth]:
    """Detected object index -> the true object (at ``true_boxes``) it overlaps, IoU >= 0.5 and same class."""
    if not len(boxes) or not truth.objects:
        return {}
    iou = box_iou(torch.from_numpy(boxes).float(), torch.from_numpy(true_boxes)).numpy()
    out: dict[int, ObjectTruth] = {}
    used: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < 0.5:
            break
        if i in out or j in used or labels[i] != truth.objects[j].cls:
            continue
        out[int(i)] = truth.objects[j]
        used.add(int(j))
    return out


def _score(sightings: list[list[tuple[TrackedObject, ObjectTruth]]]) -> ObjectFigures:
    speed_err, dist_err, direction_ok, closer_ok, relative_ok = [], [], [], [], []
    for frame in sightings:
        for est, true in frame:
            true_d = math.hypot(true.x_m, true.y_m)
            dist_err.append(abs(est.distance_m - true_d) / true_d)
            if est.speed_mps is None:
                continue
            speed_err.append(abs(est.speed_mps - true.speed_mps) * 3.6)
            direction_ok.append(
                direction_label(est.direction_deg, est.speed_mps) == direction_label(true.heading_deg, true.speed_mps)
            )
        for a in range(len(frame)):
            for b in range(a + 1, len(frame)):
                (ea, ta), (eb, tb) = frame[a], frame[b]
                da, db = math.hypot(ta.x_m, ta.y_m), math.hypot(tb.x_m, tb.y_m)
                if abs(da - db) >= 0.1 * max(da, db):
                    closer_ok.append((ea.distance_m < eb.distance_m) == (da < db))
                moving = (ea.speed_mps or 0) >= MOVING_MPS and (eb.speed_mps or 0) >= MOVING_MPS
                if moving and ta.speed_mps >= MOVING_MPS and tb.speed_mps >= MOVING_MPS:
                    assert ea.direction_deg is not None and eb.direction_deg is not None
                    relative_ok.append(
                        relative_direction(ea.direction_deg, eb.direction_deg)
                        == relative_direction(ta.heading_deg, tb.heading_deg)
                    )
    return ObjectFigures(
        objects=len(speed_err),
        sightings=len(dist_err),
        speed_mae_kmh=float(np.mean(speed_err)) if speed_err else float("nan"),
        distance_rel_error_median=float(np.median(dist_err)) if dist_err else float("nan"),
        distance_rel_error_mean=float(np.mean(dist_err)) if dist_err else float("nan"),
        direction_accuracy=float(np.mean(direction_ok)) if direction_ok else float("nan"),
        closer_accuracy=float(np.mean(closer_ok)) if closer_ok else float("nan"),
        closer_pairs=len(closer_ok),
        relative_direction_accuracy=float(np.mean(relative_ok)) if relative_ok else float("nan"),
        relative_direction_pairs=len(relative_ok),
    )


@torch.inference_mode()
def evaluate(model: SceneGraphModel, frames: FrameSet, idx: np.ndarray, log: Log) -> KinematicsReport:
    """Replay every vehicle's test frames through the tracker, with true boxes and with ``model``'s detections."""
    ego_err, drive_err = [], []
    sightings: dict[str, list[list[tuple[TrackedObject, ObjectTruth]]]] = {"detected": [], TRUE_BOXES: []}
    by_drive = drives(frames, idx)
    for n, (_, members) in enumerate(by_drive):
        out = model(frames.images(np.array(members), model.image_cfg))
        trackers = {name: VehicleTracker() for name in sightings}
        for j, i in enumerate(members):
            truth, ctx = frames.truth[i], frames.st_context[i]
            speed, heading = ego_motion(ctx)
            if speed is not None:
                ego_err.append(abs(speed - truth.ego.speed_mps) * 3.6)
            true_boxes = GraphTruth.of(truth).boxes
            det_boxes, det_labels, det_facing = detected(out, j)
            # The true boxes check the geometry and tracking alone: no facing.
            sources = {
                "detected": (det_boxes, det_labels, det_facing, _matched(det_boxes, det_labels, truth, true_boxes)),
                TRUE_BOXES: (true_boxes, [o.cls for o in truth.objects], None, dict(enumerate(truth.objects))),
            }
            for name, (boxes, labels, facing, matched) in sources.items():
                positions = object_positions(truth.camera, boxes, labels)
                tracked = trackers[name].update(truth.captured_at, positions, labels, speed, heading, facing)
                sightings[name].append([(t, matched[t.index]) for t in tracked if t.index in matched])
        first, last = frames.truth[members[0]], frames.truth[members[-1]]
        true_travelled = last.ego.odometer_m - first.ego.odometer_m
        if len(members) > 1 and true_travelled > 10:
            drive_err.append(abs(trackers[TRUE_BOXES].travelled_m - true_travelled) / true_travelled)
        log(f"kinematics: drive {n + 1}/{len(by_drive)}")
    return KinematicsReport(
        frames=len(idx),
        ego_frames=len(ego_err),
        ego_speed_mae_kmh=float(np.mean(ego_err)),
        ego_distance_rel_error=float(np.mean(drive_err)) if drive_err else float("nan"),
        ego_drives=len(by_drive),
        sources={name: _score(s) for name, s in sightings.items()},
    )
