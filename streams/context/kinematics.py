"""Per-vehicle kinematics from map-matched GPS: speed, acceleration, heading, and hard braking.

Speed is the receiver's own (Doppler) speed when it reports one, else the route distance between
consecutive matched positions over the time between them. Acceleration is the change of speed over
that time; a drop faster than ``HARD_BRAKE_MPS2`` is a hard-braking event.

Segment windows smooth each vehicle's reported speeds (``smoothed_speeds``) before taking a median:
a receiver's speed noise (a few tenths of a m/s) is a third of a crawl speed, so raw medians of
congested segments come out too high.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streams.context.map_matching import Candidate, Match, RouteDistances

HARD_BRAKE_MPS2 = 4.0  # a common telematics threshold (about 0.4 g)
MAX_GAP_S = 5.0  # beyond this, consecutive fixes say nothing about acceleration
SPEED_NOISE_MPS = 0.3  # receiver (Doppler) speed noise, one standard deviation
ICI_GAMMA = 1.0  # confidence interval half-width in standard errors (chosen on seed 11; evaluated on seed 7)
ICI_HALF_WIDTHS = (0, 1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class Kinematics:
    """The vehicle at one fix."""

    speed_mps: float
    accel_mps2: float | None  # None after a gap or at the first fix
    heading_deg: float
    hard_braking: bool


@dataclass
class VehicleKinematics:
    """Tracks one vehicle's matched fixes in time order."""

    routes: RouteDistances
    _last: Match | None = None
    _last_speed: float | None = None

    def update(self, match: Match) -> Kinematics:
        """Kinematics at ``match`` (feed matches in time order; late ones are skipped by the caller)."""
        fix, last = match.fix, self._last
        dt = (fix.ts - last.fix.ts).total_seconds() if last is not None else None
        speed = fix.speed_mps
        if speed is None and last is not None and dt:
            route = self.routes.between(_at(last), _at(match), backtrack_m=15.0)
            speed = route / dt if route is not None else self._last_speed
        speed = speed if speed is not None else 0.0
        accel = None
        if dt is not None and 0 < dt <= MAX_GAP_S and self._last_speed is not None:
            accel = (speed - self._last_speed) / dt
        _, _, bearing = match.segment.point_at(match.offset_m)
        heading = fix.heading_deg if fix.heading_deg is not None else bearing
        self._last, self._last_speed = match, speed
        return Kinematics(speed, accel, heading, accel is not None and accel <= -HARD_BRAKE_MPS2)


def smoothed_speeds(tracks: Sequence[Sequence[float]]) -> np.ndarray:
    """Each vehicle's consecutive reported speeds, each replaced by the mean of its widest agreeing neighbourhood.

    Intersection of confidence intervals: around each fix, neighbourhoods of 1, 3, 5, 9, ... fixes of
    the same vehicle are averaged while their confidence intervals (``ICI_GAMMA`` standard errors)
    still overlap, so a steady crawl is averaged over many fixes and a step (braking, a queue
    clearing) is not blurred. Returns the smoothed speeds of all tracks, concatenated in order.
    """
    speeds = np.fromiter((v for track in tracks for v in track), float)
    lengths = np.array([len(track) for track in tracks], dtype=np.int64)
    ends = np.repeat(np.cumsum(lengths), lengths)
    starts = ends - np.repeat(lengths, lengths)
    sums = np.concatenate(([0.0], np.cumsum(speeds)))
    i = np.arange(len(speeds))
    low, high = np.full(len(speeds), -np.inf), np.full(len(speeds), np.inf)
    estimate, agreeing = speeds.copy(), np.ones(len(speeds), bool)
    for half in ICI_HALF_WIDTHS:
        a, b = np.maximum(starts, i - half), np.minimum(ends, i + half + 1)
        mean, margin = (sums[b] - sums[a]) / (b - a), ICI_GAMMA * SPEED_NOISE_MPS / np.sqrt(b - a)
        low, high = np.maximum(low, mean - margin), np.minimum(high, mean + margin)
        agreeing &= low <= high
        estimate = np.where(agreeing, mean, estimate)
    return estimate


def _at(m: Match) -> Candidate:
    return Candidate(m.segment.index, m.offset_m, m.distance_m, 0.0)
