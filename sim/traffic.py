"""The traffic state of every road segment over time: congestion, incidents and what they leave open.

A segment's speed is its speed limit times a factor: demand (rush hour) against the segment's own
busyness, slowed by weather, and capped by any incident on it. The congestion label is read off that
factor, so the label, the vehicles' speeds and the traffic density drawn in frames all agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from roads.network import RoadNetwork, Segment
from sim.conditions import WEATHER_SPEED_FACTOR, WeatherProcess, demand, surface_for

# Incident kinds: how much they slow the segment, whether they block a lane, how long they last.
INCIDENT_SPEED_FACTOR = {
    "collision": 0.1,
    "stopped_vehicle": 0.3,
    "obstacle": 0.3,
    "pedestrian_in_lane": 0.3,
    "wrong_way": 0.5,
}
LANE_BLOCKING = ("collision", "stopped_vehicle", "obstacle")
INCIDENT_DURATION_S = {
    "collision": (90, 240),
    "stopped_vehicle": (60, 180),
    "obstacle": (60, 240),
    "pedestrian_in_lane": (30, 90),
    "wrong_way": (20, 60),
}
# Short-lived incidents are placed more often, so that every type is seen in a similar number of frames.
INCIDENT_WEIGHT = {
    "collision": 1.0,
    "stopped_vehicle": 1.0,
    "obstacle": 1.0,
    "pedestrian_in_lane": 2.0,
    "wrong_way": 4.0,
}
CONGESTION_BOUNDS = ((0.7, "free flow"), (0.4, "moderate"), (0.15, "heavy"), (0.0, "standstill"))
DAMAGED_FRACTION = 0.15


def congestion_label(factor: float) -> str:
    """free flow / moderate / heavy / standstill from the speed factor (speed over speed limit)."""
    return next(label for bound, label in CONGESTION_BOUNDS if factor >= bound)


@dataclass(frozen=True)
class Incident:
    """Something anomalous on one lane of a segment, for a while."""

    incident_id: str
    type: str
    segment: int
    offset_m: float  # where on the segment, metres from its start (at ``start_s``)
    lane: int  # forward lane counted from the left (0 .. segment.lanes - 1)
    start_s: float  # simulated seconds since the run started
    end_s: float
    approach_mps: float = 0.0  # a wrong-way vehicle drives towards oncoming traffic

    @property
    def gone_s(self) -> float:
        """When the incident leaves the road: its end, or when a wrong-way vehicle has left the segment."""
        if self.approach_mps:
            return min(self.end_s, self.start_s + self.offset_m / self.approach_mps)
        return self.end_s

    def active(self, t: float) -> bool:
        """Whether the incident is on the road at ``t``."""
        return self.start_s <= t < self.gone_s

    def offset_at(self, t: float) -> float:
        """Position along the segment at ``t`` (moves only for wrong-way vehicles)."""
        return self.offset_m - self.approach_mps * max(0.0, t - self.start_s)


@dataclass(frozen=True)
class SegmentState:
    """One segment at one moment."""

    speed_mps: float  # the speed traffic drives at (at the position asked about)
    factor: float  # speed over the speed limit for the segment as a whole
    congestion: str
    accessibility: str
    surface: str
    weather: str
    incident: Incident | None


class Traffic:
    """Segment states for one run; incidents are added by the world as it schedules them."""

    def __init__(self, network: RoadNetwork, rng: np.random.Generator, start: datetime, weather: WeatherProcess):
        self.network = network
        self.start = start
        self.weather = weather
        n = len(network.segments)
        main_road = np.array([s.road_class in ("primary", "secondary") for s in network.segments])
        # How busy a segment is relative to the city-wide demand; main roads attract more traffic.
        self.busyness = rng.uniform(0.6, 1.2, n) + 0.3 * main_road
        self.phase = rng.uniform(0, 2 * math.pi, n)
        self.damaged = rng.random(n) < DAMAGED_FRACTION
        self.incidents: list[Incident] = []
        self._by_segment: dict[int, list[Incident]] = {}

    def add(self, incident: Incident) -> None:
        """Put an incident on the road."""
        self.incidents.append(incident)
        self._by_segment.setdefault(incident.segment, []).append(incident)

    def incident_on(self, segment: int, t: float) -> Incident | None:
        """The active incident on a segment (the earliest, if several)."""
        return next((i for i in self._by_segment.get(segment, ()) if i.active(t)), None)

    def when(self, t: float) -> datetime:
        """Wall-clock time of simulated second ``t``."""
        return self.start + timedelta(seconds=t)

    def state(self, segment: Segment, t: float, offset_m: float | None = None) -> SegmentState:
        """The state of ``segment`` at simulated second ``t``.

        With ``offset_m`` (a position on the segment), an incident behind that position no longer slows
        the speed there; the labels still describe the whole segment.
        """
        when = self.when(t)
        i = segment.index
        weather = self.weather.at(when)
        load = demand(when) * self.busyness[i] * (1 + 0.15 * math.sin(2 * math.pi * t / 300 + self.phase[i]))
        factor = WEATHER_SPEED_FACTOR[weather] / (1 + 1.5 * load)
        incident = self.incident_on(i, t)
        accessibility, here = "open", factor
        if incident is not None:
            cap = INCIDENT_SPEED_FACTOR[incident.type]
            if incident.type in LANE_BLOCKING and segment.lanes == 1:
                cap, accessibility = 0.1, "blocked"
            else:
                accessibility = "restricted"
            factor = min(factor, cap)
            if offset_m is None or offset_m < incident.offset_at(t):
                here = factor
        return SegmentState(
            speed_mps=segment.speed_limit_kmh / 3.6 * here,
            factor=factor,
            congestion=congestion_label(factor),
            accessibility=accessibility,
            surface=surface_for(weather, bool(self.damaged[i])),
            weather=weather,
            incident=incident,
        )
