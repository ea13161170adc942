"""Turn the models' output tensors for one frame into a ``Scene`` message."""

from __future__ import annotations

import numpy as np

from models.vocab import ANOMALY_TYPES, ASPECTS, NORMAL_PROMPTS, OBJECT_CLASSES, PREDICATES, RELATION_PROMPTS
from streams.inference.triton_client import Outputs
from streams.schema import AnomalyResult, AspectResult, EnrichedFrame, Scene, SceneObject, Triplet, utcnow


def to_scene(frame: EnrichedFrame, i: int, st: Outputs, sa: Outputs, sg: Outputs, object_threshold: float) -> Scene:
    """The scene of the ``i``-th frame of a batch."""
    aspects = {}
    for aspect, labels in ASPECTS.items():
        probs = st[f"ASPECT_{aspect.upper()}"][i]
        aspects[aspect] = AspectResult(
            label=labels[int(np.argmax(probs))],
            probs={lab: round(float(p), 5) for lab, p in zip(labels, probs, strict=True)},
        )

    relation = sa["RELATION_SCORES"][i]
    anomalous = relation[len(NORMAL_PROMPTS) :]
    anomaly = AnomalyResult(
        score=float(sa["ANOMALY_SCORE"][i].reshape(-1)[0]),
        type=ANOMALY_TYPES[int(np.argmax(anomalous))],
        relation_scores={p: round(float(s), 5) for p, s in zip(RELATION_PROMPTS, relation, strict=True)},
    )

    # Keep confident objects only; triplets must refer to kept objects (re-indexed).
    kept: dict[int, int] = {}
    objects: list[SceneObject] = []
    for q, (box, cls, score) in enumerate(zip(sg["BOXES"][i], sg["CLASS_IDS"][i], sg["CLASS_SCORES"][i], strict=True)):
        if score >= object_threshold and 0 <= cls < len(OBJECT_CLASSES):
            kept[q] = len(objects)
            x1, y1, x2, y2 = (round(float(v), 4) for v in box)
            objects.append(
                SceneObject(box=(x1, y1, x2, y2), label=OBJECT_CLASSES[int(cls)], score=round(float(score), 4))
            )
    triplets = [
        Triplet(subject=kept[int(s)], predicate=PREDICATES[int(p)], object=kept[int(o)], score=round(float(score), 5))
        for (s, p, o), score in zip(sg["TRIPLETS"][i], sg["TRIPLET_SCORES"][i], strict=True)
        if int(s) in kept and int(o) in kept and 0 <= int(p) < len(PREDICATES)
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
        ingested_at=frame.ingested_at,
        inferred_at=utcnow(),
    )
