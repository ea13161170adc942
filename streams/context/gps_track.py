"""Recent GPS fixes per vehicle and the fix nearest in time to a frame.

Fixes are kept as compact lists ``[epoch_s, lat, lon, speed, heading, accuracy]`` sorted by time,
so that late and out-of-order fixes slot into place.

The store is a per-worker cache, not a changelogged Faust table, on purpose: it holds only the last
couple of minutes and refills from the GPS stream itself: a partition a worker takes over is read
back from before its committed offset (``streams.context.warmup``), and frames and GPS are
co-partitioned, so the worker owning a vehicle's frames consumes its fixes. A changelog would add
one produced message per fix, and Faust's changelog recovery hangs on the embedded Tansu broker.
"""

from __future__ import annotations

import bisect
from datetime import datetime, timezone
from typing import Any

from core.recent_vehicles import RecentVehicles
from records.messages import AttachedFix, GpsFix

Row = list[Any]  # [epoch_s, lat, lon, speed_mps, heading_deg, accuracy_m]; the last three may be None


def add_fix(history: list[Row], fix: GpsFix, keep: int) -> list[Row]:
    """``history`` with ``fix`` inserted in time order (a repeated timestamp replaces), newest ``keep`` kept.

    Updates the list in place and returns it: this runs for every fix, and fixes mostly arrive in order.
    """
    row: Row = [fix.ts.timestamp(), fix.lat, fix.lon, fix.speed_mps, fix.heading_deg, fix.accuracy_m]
    if not history or history[-1][0] < row[0]:
        history.append(row)
    else:
        i = bisect.bisect_left(history, row[0], key=lambda r: r[0])
        if i < len(history) and history[i][0] == row[0]:
            history[i] = row
        else:
            history.insert(i, row)
    if len(history) > keep:
        del history[: len(history) - keep]
    return history


def nearest_fix(history: list[Row], at: datetime, tolerance_s: float) -> AttachedFix | None:
    """The fix closest in time to ``at`` if it is within ``tolerance_s``, else None."""
    if not history:
        return None
    t = at.timestamp()
    best = min(history, key=lambda r: abs(float(r[0]) - t))
    offset = float(best[0]) - t
    if abs(offset) > tolerance_s:
        return None
    return AttachedFix(
        ts=datetime.fromtimestamp(float(best[0]), timezone.utc),
        lat=float(best[1]),
        lon=float(best[2]),
        speed_mps=best[3],
        heading_deg=best[4],
        accuracy_m=best[5],
        offset_s=offset,
    )


def newest_ts(history: list[Row]) -> float | None:
    return float(history[-1][0]) if history else None


class RecentFixes:
    """The newest ``keep`` fixes of each of the ``max_vehicles`` vehicles whose fixes came most recently."""

    def __init__(self, keep: int, max_vehicles: int = 10_000) -> None:
        self.keep = keep
        self._by_vehicle: RecentVehicles[list[Row]] = RecentVehicles(list, max_vehicles)

    def __len__(self) -> int:
        return len(self._by_vehicle)

    def add(self, fix: GpsFix) -> None:
        add_fix(self._by_vehicle.seen(fix.vehicle_id), fix, self.keep)

    def history(self, vehicle_id: str) -> list[Row]:
        return self._by_vehicle.get(vehicle_id) or []
