"""Fleet vehicles: where they drive, how fast, and the GPS fixes they report.

Each vehicle drives a random route (no U-turns, preferring to go straight) at its segment's traffic
speed, with bounded acceleration, slowing ahead of a slower segment. Its GPS reports at 1 Hz with
Gaussian noise, drops fixes (always in tunnels), and some fixes arrive late and out of order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from roads.network import RoadNetwork, Segment
from sim.camera import Camera
from sim.traffic import Traffic
from sim.truth import GpsTruth

ACCEL_MPS2 = 1.5
BRAKE_MPS2 = 3.0
HARD_BRAKE_MPS2 = 6.0  # used when the speed to shed is more than HARD_BRAKE_TRIGGER_MPS in one go
HARD_BRAKE_TRIGGER_MPS = 5.0


@dataclass(frozen=True)
class GpsConfig:
    """How the fleet's GPS receivers behave."""

    noise_m: float = 5.0  # standard deviation per horizontal axis
    dropout: float = 0.02  # probability that one fix is lost
    outages_per_hour: float = 6.0  # longer losses of signal per vehicle, 5-20 s each
    late_fraction: float = 0.03  # fixes delivered 5-30 s late (out of order)
    latency_s: float = 0.3  # mean delivery delay of the others


@dataclass
class Vehicle:
    """One fleet vehicle's state; ``step`` advances it by ``dt`` simulated seconds."""

    vehicle_id: str
    rng: np.random.Generator
    camera: Camera
    segment: int
    offset_m: float
    speed_factor: float  # how this driver drives relative to the traffic speed
    frame_phase_s: float
    speed_mps: float = 0.0
    accel_mps2: float = 0.0
    route: list[int] = field(default_factory=list)  # the next segments, decided ahead
    odometer_m: float = 0.0
    outage_until: float = -1.0
    entered_at: float = 0.0

    def plan(self, network: RoadNetwork, length: int = 2) -> None:
        """Extend the route to ``length`` segments ahead."""
        last = network.segments[self.route[-1] if self.route else self.segment]
        while len(self.route) < length:
            last = network.segments[self._choose_next(network, last)]
            self.route.append(last.index)

    def _choose_next(self, network: RoadNetwork, seg: Segment) -> int:
        bearing = _bearing(seg.xy[-2], seg.xy[-1])
        options = seg.successors
        turn = np.array([_angle(bearing, _bearing(*network.segments[j].xy[:2])) for j in options])
        weights = np.where(turn < 30, 3.0, 1.0)
        return int(options[int(self.rng.choice(len(options), p=weights / weights.sum()))])

    def target_speed(self, network: RoadNetwork, traffic: Traffic, t: float) -> float:
        """The traffic speed here, or the next segment's when it is slower and within braking distance."""
        seg = network.segments[self.segment]
        target = traffic.state(seg, t, self.offset_m).speed_mps * self.speed_factor
        nxt = traffic.state(network.segments[self.route[0]], t, 0.0).speed_mps * self.speed_factor
        remaining = seg.length_m - self.offset_m
        if nxt < target and remaining <= (self.speed_mps**2 - nxt**2) / (2 * BRAKE_MPS2) + self.speed_mps:
            target = nxt
        return target

    def step(self, network: RoadNetwork, traffic: Traffic, t: float, dt: float) -> list[int]:
        """Advance ``dt`` seconds from ``t``; returns the segments entered on the way."""
        target = self.target_speed(network, traffic, t)
        v = self.speed_mps
        if target >= v:
            new_v = min(target, v + ACCEL_MPS2 * dt)
        else:
            brake = HARD_BRAKE_MPS2 if v - target > HARD_BRAKE_TRIGGER_MPS else BRAKE_MPS2
            new_v = max(target, v - brake * dt)
        self.accel_mps2 = (new_v - v) / dt
        self.speed_mps = new_v
        self.offset_m += (v + new_v) / 2 * dt
        self.odometer_m += (v + new_v) / 2 * dt
        entered = []
        while self.offset_m >= network.segments[self.segment].length_m:
            self.offset_m -= network.segments[self.segment].length_m
            self.segment = self.route.pop(0)
            self.entered_at = t + dt
            entered.append(self.segment)
            self.plan(network)
        return entered

    def gps(self, network: RoadNetwork, t: float, config: GpsConfig, start: datetime) -> GpsTruth | None:
        """The fix for simulated second ``t`` of a run that began at ``start``, or None when it is lost."""
        seg = network.segments[self.segment]
        x, y, bearing = seg.point_at(self.offset_m)
        lat, lon = network.projection.to_latlon(x, y)
        if self.outage_until < t and self.rng.random() < config.outages_per_hour / 3600:
            self.outage_until = t + self.rng.uniform(5, 20)
        # Draw every random number every time, so that a lost fix does not shift the others.
        noise = self.rng.normal(0, config.noise_m, 2)
        lost = self.rng.random() < config.dropout
        late = self.rng.random() < config.late_fraction
        delay = self.rng.uniform(5, 30) if late else self.rng.exponential(config.latency_s)
        speed_noise, heading_noise = self.rng.normal(0, 0.3), self.rng.normal(0, 3)
        accuracy = config.noise_m * self.rng.uniform(0.8, 1.25)
        if lost or seg.tunnel or t < self.outage_until:
            return None
        noisy_lat, noisy_lon = network.projection.to_latlon(x + noise[0], y + noise[1])
        moving = self.speed_mps > 1.0
        return GpsTruth(
            vehicle_id=self.vehicle_id,
            ts=start + timedelta(seconds=t),
            delivered_at=start + timedelta(seconds=t + delay),
            lat=float(noisy_lat),
            lon=float(noisy_lon),
            speed_mps=max(0.0, self.speed_mps + speed_noise),
            heading_deg=(bearing + heading_noise) % 360 if moving else None,
            accuracy_m=accuracy,
            true_lat=float(lat),
            true_lon=float(lon),
            true_speed_mps=self.speed_mps,
            segment_id=seg.segment_id,
            offset_m=self.offset_m,
        )


def _bearing(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])) % 360


def _angle(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)
