"""How vehicle incidents merge into one alert per incident on a road segment (the rows of ``alerts``).

Merging keeps the highest score (and its severity and evidence), the union of frames and vehicles,
each vehicle's best score, and the widest window; confidence is 1 - the product over vehicles of
(1 - their best score), so each corroborating vehicle raises it. Every step is a maximum or a union,
so merging the same incident again changes nothing; and an incident the alert already holds that
brings no frame and no time the alert lacks (a replay) leaves the row as it is, even where batched
inference scored its frames a few units in the last place apart (measured: 0.40029097 and 0.40029109
for one frame, in two batches). The sink (``streams.sinks.alert_store``) finds
which stored alert an incident belongs to, since only the database sees every worker's incidents.
"""

from __future__ import annotations

import math
from typing import Any

from records.messages import Alert


def alert_row(alert: Alert) -> dict[str, Any]:
    """The alerts row of one vehicle's incident, before any merge."""
    evidence = dict(alert.evidence)
    evidence["frame_ids"] = sorted(evidence["frame_ids"])
    evidence["vehicle_scores"] = {alert.vehicle_id: alert.score}
    return {
        "alert_id": alert.alert_id,
        "type": alert.type,
        "severity": alert.severity,
        "vehicle_id": alert.vehicle_id,
        "vehicles": [alert.vehicle_id],
        "vehicle_incidents": [alert.alert_id],
        "confidence": alert.score,
        "lat": alert.location.lat if alert.location else None,
        "lon": alert.location.lon if alert.location else None,
        "cell_id": alert.cell_id,
        "segment_id": alert.segment_id,
        "window_start": alert.window_start,
        "window_end": alert.window_end,
        "score": alert.score,
        "frame_ids": evidence["frame_ids"],
        "evidence": evidence,
    }


def merged_row(current: dict[str, Any], alert: Alert) -> dict[str, Any]:
    """``current`` (a stored alert) with one more vehicle incident folded in."""
    new = alert_row(alert)
    if (
        alert.alert_id in current["vehicle_incidents"]
        and set(new["frame_ids"]) <= set(current["frame_ids"])
        and current["window_start"] <= new["window_start"]
        and new["window_end"] <= current["window_end"]
    ):
        return current  # the same evidence again
    higher = new["score"] > current["score"]
    best = new if higher else current
    vehicle_scores = dict(current["evidence"].get("vehicle_scores", {current["vehicle_id"]: current["score"]}))
    vehicle_scores[alert.vehicle_id] = max(vehicle_scores.get(alert.vehicle_id, 0.0), alert.score)
    frame_ids = sorted(set(current["frame_ids"]) | set(new["frame_ids"]))
    return {
        "alert_id": current["alert_id"],
        "type": current["type"],
        "severity": best["severity"],
        "vehicle_id": current["vehicle_id"],
        "vehicles": sorted(vehicle_scores),
        "vehicle_incidents": sorted(set(current["vehicle_incidents"]) | {alert.alert_id}),
        "confidence": corroborated(vehicle_scores.values()),
        **{k: current[k] if current[k] is not None else new[k] for k in ("lat", "lon", "cell_id", "segment_id")},
        "window_start": min(current["window_start"], new["window_start"]),
        "window_end": max(current["window_end"], new["window_end"]),
        "score": best["score"],
        "frame_ids": frame_ids,
        "evidence": best["evidence"] | {"frame_ids": frame_ids, "vehicle_scores": dict(sorted(vehicle_scores.items()))},
    }


def corroborated(scores: Any) -> float:
    """Confidence that an incident is real when each vehicle's best score is an independent report."""
    return 1.0 - math.prod(1.0 - s for s in scores)
