"""How well online map matching recovers the true segment of each GPS fix, and segment median speeds.

Runs the simulator (GPS only), feeds the fixes in delivery order (late and out-of-order fixes
included) to the worker's own per-vehicle tracks (matcher and kinematics), and compares with the
ground truth: the share of fixes matched to the segment the vehicle was really on, and, per segment
and window where at least ``min_vehicles`` vehicles really were, the median GPS speed of the fixes
matched there (the worker's window arithmetic) against the true median speed.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from kinematics.braking import acceleration, is_hard_braking
from records.messages import ObservedFix
from roads.network import RoadNetwork
from sim.fleet import GpsConfig
from sim.publish import gps_message, in_delivery_order
from sim.world import GpsEmission, World, WorldConfig
from streams.context.segment_windows import merged, window_stats
from streams.context.vehicle_track import VehicleTracks

CRAWL_MPS = 2.0  # about 7 km/h: a queue's crawl


@dataclass
class MapMatchingReport:
    """Measured figures of one evaluation run (synthetic data)."""

    vehicles: int
    duration_s: float
    gps_noise_m: float
    fixes: int
    matched: int
    correct: int
    late_fixes: int
    late_correct: int
    windows_compared: int
    windows_within_10pct: int
    windows_within_10pct_or_1kmh: int
    windows_missed_crawling: int  # of the windows not within 10%, those with a true median below CRAWL_MPS
    median_speed_rel_error: float | None
    hard_brakes_true: int
    hard_brakes_detected: int
    hard_brakes_both: int
    match_us_per_fix: float
    wall_s: float

    @property
    def accuracy(self) -> float:
        """Correct segment over all fixes sent (unmatched fixes count as wrong)."""
        return self.correct / self.fixes if self.fixes else 0.0

    def text(self) -> str:
        """The report as a user reads it."""
        share = self.windows_within_10pct / self.windows_compared if self.windows_compared else 0.0
        err = "n/a" if self.median_speed_rel_error is None else f"{self.median_speed_rel_error:.1%}"
        return "\n".join(
            [
                f"map matching on the simulator (synthetic): {self.vehicles} vehicles, {self.duration_s:g} s, "
                f"GPS noise {self.gps_noise_m:g} m per axis",
                f"  fixes sent                {self.fixes}  (late, out of order: {self.late_fixes})",
                f"  matched to a segment      {self.matched}",
                f"  correct segment           {self.correct}  = {self.accuracy:.2%}  (target >= 95%)",
                f"  late fixes correct        {self.late_correct}/{self.late_fixes}",
                f"  segment windows, >=5 veh  {self.windows_compared}  "
                f"(median speed within 10% of truth: {self.windows_within_10pct} = {share:.1%};"
                f" within 10% or 1 km/h: {self.windows_within_10pct_or_1kmh})",
                f"  median relative error     {err}; of the {self.windows_compared - self.windows_within_10pct}"
                f" windows not within 10%, {self.windows_missed_crawling} crawl (true median < {CRAWL_MPS:g} m/s,"
                " where 10% is below the receiver's speed noise)",
                f"  hard braking (true speeds) {self.hard_brakes_true}; detected from GPS {self.hard_brakes_detected},"
                f" of which true {self.hard_brakes_both}",
                f"  matching cost             {self.match_us_per_fix:.0f} us per fix"
                " (matcher + kinematics, one core, Python)",
            ]
        )


def evaluate(
    network: RoadNetwork,
    vehicles: int,
    duration_s: float,
    seed: int,
    start: datetime,
    gps_noise_m: float = 5.0,
    window_s: int = 60,
    min_vehicles: int = 5,
) -> MapMatchingReport:
    """Simulate, match, and score (see the module docstring)."""
    t0 = time.monotonic()
    config = WorldConfig(vehicles=vehicles, gps=GpsConfig(noise_m=gps_noise_m), frames=False, windows_s=(window_s,))
    world = World(network, config, seed, start)
    emissions = [e for e in in_delivery_order(world.run(duration_s)) if isinstance(e, GpsEmission)]
    messages = [gps_message(e.truth) for e in emissions]
    tracks = VehicleTracks(network, sigma_m=max(gps_noise_m, 1.0))
    m0 = time.perf_counter()
    points = tracks.push_all(messages) + tracks.flush_idle(0.0)  # idle 0 s: the end of the stream
    match_s = time.perf_counter() - m0

    truth = {(e.truth.vehicle_id, e.truth.ts): e.truth for e in emissions}
    correct = late = late_correct = 0
    observed: dict[tuple[str, datetime], list[ObservedFix]] = defaultdict(list)
    for p in points:
        ok = p.segment.segment_id == truth[(p.vehicle_id, p.ts)].segment_id
        correct += ok
        if not p.in_order:
            late += 1
            late_correct += ok
        window = start.timestamp() + (p.ts.timestamp() - start.timestamp()) // window_s * window_s
        observed[(p.segment.segment_id, datetime.fromtimestamp(window, start.tzinfo))].append(p.observation())
    true_brakes = _true_hard_braking(emissions)
    detected_brakes = {(p.vehicle_id, p.ts) for p in points if p.hard_braking}
    errors: list[tuple[float, float]] = []  # (relative error, true median in m/s)
    for row in world.road_conditions():
        if row.window_seconds != window_s or row.vehicle_count < min_vehicles or not row.median_speed_mps:
            continue
        fixes = observed.get((row.segment_id, row.window_start), [])
        # The worker's own window arithmetic (streams.context.segment_windows) on this window's matched fixes.
        start_s = row.window_start.timestamp()
        stats = window_stats(row.segment_id, (start_s, start_s + window_s), window_s, merged({}, fixes))
        if stats.median_speed_mps is None:
            errors.append((1.0, row.median_speed_mps))  # the pipeline has no speed for this window: a miss
            continue
        errors.append((abs(stats.median_speed_mps - row.median_speed_mps) / row.median_speed_mps, row.median_speed_mps))
    return MapMatchingReport(
        vehicles=vehicles,
        duration_s=duration_s,
        gps_noise_m=gps_noise_m,
        fixes=len(emissions),
        matched=len(points),
        correct=correct,
        late_fixes=late,
        late_correct=late_correct,
        windows_compared=len(errors),
        windows_within_10pct=sum(1 for e, _ in errors if e <= 0.10),
        windows_within_10pct_or_1kmh=sum(1 for e, true in errors if e <= 0.10 or e * true <= 1 / 3.6),
        windows_missed_crawling=sum(1 for e, true in errors if e > 0.10 and true < CRAWL_MPS),
        median_speed_rel_error=statistics.median(e for e, _ in errors) if errors else None,
        hard_brakes_true=len(true_brakes),
        hard_brakes_detected=len(detected_brakes),
        hard_brakes_both=len(true_brakes & detected_brakes),
        match_us_per_fix=match_s / max(len(emissions), 1) * 1e6,
        wall_s=time.monotonic() - t0,
    )


def _true_hard_braking(emissions: list[GpsEmission]) -> set[tuple[str, datetime]]:
    """(vehicle, fix time) of hard braking by the true speeds."""
    truth: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for e in emissions:
        truth[e.truth.vehicle_id].append((e.truth.ts, e.truth.true_speed_mps))
    true_set = set()
    for vehicle_id, series in truth.items():
        series.sort()
        for (t0, v0), (t1, v1) in zip(series, series[1:], strict=False):
            if is_hard_braking(acceleration(v0, v1, (t1 - t0).total_seconds())):
                true_set.add((vehicle_id, t1))
    return true_set
