"""Road-condition outputs against the simulator's ground truth: accuracy per ST-CLIP aspect.

Two views: each processed frame's most probable label (``frame_observations.aspects``) against the
frame's true label, and each ``segment_road_conditions`` row's dominant label (the largest share) against
the most common true label of the frames the pipeline put into that segment and window, which is
what a dashboard reading the table is told.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.vocab import ASPECTS
from sim.truth import FrameTruth


@dataclass(frozen=True)
class FrameObservation:
    """One processed frame as stored: where the pipeline put it and the labels it gave."""

    frame_id: str
    segment_id: str | None
    captured_at: datetime
    aspects: Mapping[str, str]


@dataclass(frozen=True)
class ConditionRow:
    """One segment_road_conditions row: aspect -> label -> share of the window's frames."""

    segment_id: str
    window_start: datetime
    window_seconds: int
    aspects: Mapping[str, Mapping[str, float]]


@dataclass
class ConditionReport:
    """Accuracy per aspect, over frames and over table rows."""

    frames: int
    frame_accuracy: dict[str, float]
    rows: int
    row_accuracy: dict[str, float]

    def text(self) -> str:
        lines = [
            "road conditions against the simulator's truth (synthetic data), accuracy per aspect",
            f"  {'aspect':<18} {'frames':>7} {'table rows':>10}",
            f"  {'(count)':<18} {self.frames:>7} {self.rows:>10}",
        ]
        for aspect in ASPECTS:
            frame, row = _share(self.frame_accuracy.get(aspect)), _share(self.row_accuracy.get(aspect))
            lines.append(f"  {aspect:<18} {frame:>7} {row:>10}")
        return "\n".join(lines)


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def score_conditions(
    observations: Sequence[FrameObservation], rows: Sequence[ConditionRow], truth: Mapping[str, FrameTruth]
) -> ConditionReport:
    """Score stored frame labels and condition rows against the truth of the frames (by frame id)."""
    observed = [o for o in observations if o.frame_id in truth]
    frame_hits: Counter[str] = Counter()
    for o in observed:
        frame_hits.update(a for a in ASPECTS if o.aspects.get(a) == truth[o.frame_id].aspects[a])

    by_segment: dict[str, list[FrameObservation]] = defaultdict(list)
    for o in observed:
        if o.segment_id is not None:
            by_segment[o.segment_id].append(o)
    row_hits: Counter[str] = Counter()
    scored = 0
    for row in rows:
        end = row.window_start + timedelta(seconds=row.window_seconds)
        inside = [truth[o.frame_id] for o in by_segment[row.segment_id] if row.window_start <= o.captured_at < end]
        if not inside:
            continue
        scored += 1
        for aspect in ASPECTS:
            shares = row.aspects.get(aspect)
            if shares:
                true_label = Counter(f.aspects[aspect] for f in inside).most_common(1)[0][0]
                row_hits[aspect] += max(shares, key=lambda label: shares[label]) == true_label
    return ConditionReport(
        frames=len(observed),
        frame_accuracy={a: frame_hits[a] / len(observed) for a in ASPECTS} if observed else {},
        rows=scored,
        row_accuracy={a: row_hits[a] / scored for a in ASPECTS} if scored else {},
    )
