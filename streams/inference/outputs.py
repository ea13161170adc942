"""Turn the models' output tensors for one frame into a ``Scene`` message."""

from __future__ import annotations

import numpy as np

from kinematics.ground import object_positions
from models.vocab import ANOMALY_TYPES, ASPECTS, NORMAL_PROMPTS, OBJECT_CLASSES, PREDICATES, RELATION_PROMPTS
from records.messages import AnomalyResult, AspectResult, EnrichedFrame, Scene, SceneObject, Triplet, utcnow
from streams.inference.triton_client import Outputs


def anomaly_result(score: float, relation_scores: np.ndarray) -> AnomalyResult:
    """SA-CLIP's output for one frame: its anomaly score and its probability per relation prompt."""
    return AnomalyResult(
        score=score,
        type=ANOMALY_TYPES[int(np.argmax(relation_scores[len(NORMAL_PROMPTS) :]))],
        relation_scores={p: round(float(s), 5) for p, s in zip(RELATION_PROMPTS, relation_scores, strict=True)},
    )


def to_scene(frame: EnrichedFrame, i: int, st: Outputs, sa: Outputs, sg: Outputs, object_threshold: float) -> Scene:
    """The scene of the ``i``-th frame of a batch."""
    aspects = {}
    for aspect, labels in ASPECTS.items():
        probs = st[f"ASPECT_{aspect.upper()}"][i]
        aspects[aspect] = AspectResult(
            label=labels[int(np.argmax(probs))],
            probs={lab: round(float(p), 5) for lab, p in zip(labels, probs, strict=True)},
        )

    anomaly = anomaly_result(float(sa["ANOMALY_SCORE"][i].reshape(-1)[0]), sa["RELATION_SCORES"][i])

    # Keep confident objects only; triplets must refer to kept objects (re-indexed).
    kept = [
        q
        for q, (cls, score) in enumerate(zip(sg["CLASS_IDS"][i], sg["CLASS_SCORES"][i], strict=True))
        if score >= object_threshold and 0 <= cls < len(OBJECT_CLASSES)
    ]
    object_labels: list[str] = [OBJECT_CLASSES[int(sg["CLASS_IDS"][i][q])] for q in kept]
    boxes = np.asarray(sg["BOXES"][i], dtype=np.float64)[kept]
    positions = object_positions(frame.frame.camera, boxes, object_labels)
    objects = [
        SceneObject(
            box=tuple(round(float(v), 4) for v in box),  # type: ignore[arg-type]
            label=object_label,
            score=round(float(sg["CLASS_SCORES"][i][q]), 4),
            x_m=None if np.isnan(xy).any() else round(float(xy[0]), 2),
            y_m=None if np.isnan(xy).any() else round(float(xy[1]), 2),
            facing=round(float(sg["FACING"][i][q]), 4),
        )
        for q, object_label, box, xy in zip(kept, object_labels, boxes, positions, strict=True)
    ]
    index = {q: n for n, q in enumerate(kept)}
    triplets = [
        Triplet(subject=index[int(s)], predicate=PREDICATES[int(p)], object=index[int(o)], score=round(float(score), 5))
        for (s, p, o), score in zip(sg["TRIPLETS"][i], sg["TRIPLET_SCORES"][i], strict=True)
        if int(s) in index and int(o) in index and 0 <= int(p) < len(PREDICATES)
    ]
    f = frame.frame
    return Scene(
        frame_id=f.frame_id,
        vehicle_id=f.vehicle_id,
        captured_at=f.captured_at,
        gps=frame.gps,
        cell_id=frame.cell_id,
        segment_id=frame.segment.segment_id if frame.segment else None,
        aspects=aspects,
        anomaly=anomaly,
        objects=objects,
        triplets=triplets,
        produced_at=frame.produced_at,
        source=frame.source,
        ingested_at=frame.ingested_at,
        inferred_at=utcnow(),
    )
