"""Alerts against the simulator's ground truth: precision, recall and detection latency by type.

An alert is *correct* when at least one of its evidence frames truly shows an anomaly of the alert's
type and at least half of them (``MIN_INCIDENT_SHARE``) show some incident: an alert that stands
mostly on normal driving is a false alert whatever it grew to include, else one that never closes
would find every incident its vehicle passes (an always-on rule scored precision 0.63 and recall
0.88 on the tuning world that way). An incident counts towards recall when at least one processed
frame shows it (an incident no fleet camera saw cannot be detected), and is *detected* when a
correct alert of its type holds one of its frames. Detection latency is simulated time from the
first moment a fleet camera had the incident in view to the capture time of the frame at which the
alert fired (the k-th matching frame of one vehicle, k being the rule's persistence), or of the
alert's first frame of the incident if that came later. Alert types the simulator has no truth for
(hard_braking, closing_fast) are counted but not scored. The "any type" row asks only whether an
alert of an anomaly type stood on some incident (alerts and incidents of every scored type), which
separates finding incidents from naming their type.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sim.truth import AnomalyEvent, FrameTruth
from sim.vocab import ANOMALY_TYPES

MIN_INCIDENT_SHARE = 0.5


@dataclass(frozen=True)
class RaisedAlert:
    """What the evaluation needs of one stored alert."""

    alert_id: str
    type: str
    frame_ids: tuple[str, ...]


@dataclass
class TypeScore:
    """One alert type's figures."""

    alerts: int = 0
    correct: int = 0
    incidents: int = 0  # seen in at least one processed frame
    detected: int = 0
    latencies_s: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.correct / self.alerts if self.alerts else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.incidents if self.incidents else None

    @property
    def median_latency_s(self) -> float | None:
        return statistics.median(self.latencies_s) if self.latencies_s else None


@dataclass
class AlertReport:
    """Figures per alert type; ``scored`` types have simulator truth."""

    by_type: dict[str, TypeScore]
    any_type: TypeScore
    scored: tuple[str, ...] = ANOMALY_TYPES

    def text(self) -> str:
        def fmt(x: float | None, spec: str = ".2f") -> str:
            return "-" if x is None else format(x, spec)

        lines = [
            "alerts against the simulator's truth (synthetic data)",
            f"  {'type':<20} {'alerts':>6} {'correct':>7} {'precision':>9} {'incidents':>9} {'detected':>8}"
            f" {'recall':>6} {'median latency':>14}",
        ]
        scored = [(name, self.by_type[name]) for name in sorted(self.scored)]
        for name, s in [*scored, ("(any type)", self.any_type)]:
            lines.append(
                f"  {name:<20} {s.alerts:>6} {s.correct:>7} {fmt(s.precision):>9} {s.incidents:>9}"
                f" {s.detected:>8} {fmt(s.recall):>6} {fmt(s.median_latency_s, '.1f'):>12} s"
            )
        for name, s in sorted(self.by_type.items()):
            if name not in self.scored:
                lines.append(f"  {name:<20} {s.alerts:>6}  (no ground truth in the simulator)")
        return "\n".join(lines)


def score_alerts(
    alerts: Sequence[RaisedAlert],
    frames: Mapping[str, FrameTruth],
    events: Sequence[AnomalyEvent],
    persistence_k: Mapping[str, int],
) -> AlertReport:
    """Score ``alerts`` against the truth of the processed ``frames`` (by frame id) and the run's ``events``."""
    seen = {f.incident_id: f.anomaly for f in frames.values() if f.incident_id is not None and f.anomaly is not None}
    in_view: dict[str, datetime] = {}
    for e in events:
        in_view[e.incident_id] = min(in_view.get(e.incident_id, e.start), e.start)
    scores = {name: TypeScore() for name in ANOMALY_TYPES}  # every scored type gets a row
    any_type = TypeScore(incidents=len(seen))
    for incident_type in seen.values():
        scores[incident_type].incidents += 1

    fired: dict[str, datetime] = {}  # incident id -> earliest firing of an alert of its type
    fired_any: dict[str, datetime] = {}  # incident id -> earliest firing of an alert of any anomaly type
    for alert in alerts:
        score = scores.setdefault(alert.type, TypeScore())
        score.alerts += 1
        if alert.type not in ANOMALY_TYPES:
            continue
        any_type.alerts += 1
        shown = [frames[i] for i in alert.frame_ids if i in frames]
        if sum(f.incident_id is not None for f in shown) < MIN_INCIDENT_SHARE * len(shown):
            continue  # mostly normal driving: false, and it detects nothing
        # An incident is detected when the alert has fired and holds a frame of it (an alert may
        # have fired before, on other frames, and grown to include the incident).
        fired_at = firing_time(shown, persistence_k.get(alert.type, 1)) if shown else None
        detected_at: dict[str, datetime] = {}
        for f in shown:
            if f.incident_id is not None and fired_at is not None:
                at = max(fired_at, f.captured_at)
                detected_at[f.incident_id] = min(detected_at.get(f.incident_id, at), at)
        if not detected_at:
            continue
        any_type.correct += 1
        _earliest(fired_any, detected_at)
        typed = {i: at for i, at in detected_at.items() if seen.get(i) == alert.type}
        if typed:
            score.correct += 1
            _earliest(fired, typed)
    for found, counter_of in ((fired, lambda i: scores[seen[i]]), (fired_any, lambda i: any_type)):
        for incident_id, at in found.items():
            counter = counter_of(incident_id)
            counter.detected += 1
            if incident_id in in_view:
                counter.latencies_s.append((at - in_view[incident_id]).total_seconds())
    return AlertReport(scores, any_type)


def _earliest(found: dict[str, datetime], times: Mapping[str, datetime]) -> None:
    for incident_id, at in times.items():
        found[incident_id] = min(found.get(incident_id, at), at)


def firing_time(frames: Sequence[FrameTruth], k: int) -> datetime:
    """When an alert with these matching frames first fired: the k-th frame of its earliest vehicle."""
    by_vehicle: dict[str, list[datetime]] = defaultdict(list)
    for f in frames:
        by_vehicle[f.vehicle_id].append(f.captured_at)
    return min(sorted(times)[min(k, len(times)) - 1] for times in by_vehicle.values())
