"""The simulated world: a fleet driving the road network through changing traffic, weather and incidents.

``World.run`` advances time in small steps and yields, in capture order, every GPS fix and every
frame's ``SceneSpec`` with its ground truth. Afterwards the world reports the incidents it placed, the
anomaly events each vehicle saw, and the true road conditions per segment and window.
Everything is drawn from generators seeded by (seed, episode, vehicle), so a run is reproducible.
"""

from __future__ import annotations

import math
import statistics
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from roads.network import RoadNetwork
from sim.camera import Camera
from sim.conditions import WeatherProcess, lighting_at
from sim.fleet import GpsConfig, Vehicle
from sim.local_scene import INCIDENT_FAR_M, INCIDENT_NEAR_M, INCIDENT_VIEW_M, LocalScene, collision_pairs, relations
from sim.scene_spec import SceneSpec
from sim.traffic import INCIDENT_DURATION_S, INCIDENT_WEIGHT, Incident, Traffic
from sim.truth import (
    AnomalyEvent,
    EgoTruth,
    FrameTruth,
    GpsTruth,
    IncidentTruth,
    ObjectTruth,
    RoadConditionTruth,
    RoadTruth,
)
from sim.vocab import ANOMALY_TYPES, model_aspects

WRONG_WAY_SPEED_MPS = 3.0  # a car creeping the wrong way, e.g. out of a one-way street


@dataclass(frozen=True)
class WorldConfig:
    """Knobs of one simulated run."""

    vehicles: int = 20
    frame_interval_s: float = 2.0
    image_size: int = 224
    incidents_per_vehicle_hour: float = 30.0
    gps: GpsConfig = field(default_factory=GpsConfig)
    windows_s: tuple[int, ...] = (60, 300)
    dt: float = 0.5  # simulation step; frame times are multiples of it
    frames: bool = True  # False: GPS only (faster, for map-matching and segment-window evaluations)


@dataclass(frozen=True)
class FrameEmission:
    """A frame to render and send, with its truth."""

    t: float  # capture time, simulated seconds
    delivered_t: float
    spec: SceneSpec
    truth: FrameTruth


@dataclass(frozen=True)
class GpsEmission:
    """A GPS fix to send, with its truth."""

    t: float
    delivered_t: float
    truth: GpsTruth


@dataclass
class _OpenEvent:
    incident: Incident
    start: float
    last: float


class World:
    """One episode of the fleet, from ``start`` for as long as ``run`` is asked to go."""

    def __init__(
        self,
        network: RoadNetwork,
        config: WorldConfig,
        seed: int,
        start: datetime,
        episode: int = 0,
        weather: str | None = None,
        split_for: Callable[[str], str | None] = lambda vehicle_id: None,
        incident_weights: Callable[[str], dict[str, float]] = lambda vehicle_id: INCIDENT_WEIGHT,
    ):
        self.network, self.config, self.start, self.episode = network, config, start, episode
        self._rng = np.random.default_rng([seed, episode])
        self._seed = seed
        self.traffic = Traffic(network, self._rng, start, WeatherProcess(self._rng, start, weather))
        self._split_for, self._weights = split_for, incident_weights
        self.vehicles = [self._new_vehicle(i) for i in range(config.vehicles)]
        self._scenes = {v.vehicle_id: LocalScene(v.rng, next_track=i * 100_000) for i, v in enumerate(self.vehicles)}
        self._open: dict[str, _OpenEvent] = {}
        self.events: list[AnomalyEvent] = []
        # Per segment, one (vehicle, entered at, t, speed) sample per vehicle and second.
        self._presence: dict[int, list[tuple[str, float, float, float]]] = defaultdict(list)
        self._t = 0.0

    def _new_vehicle(self, i: int) -> Vehicle:
        rng = np.random.default_rng([self._seed, self.episode, i])
        usable = [s for s in self.network.segments if s.length_m > 20]
        seg = usable[int(rng.integers(len(usable)))]
        step = self.config.dt
        vehicle = Vehicle(
            vehicle_id=f"veh-{i:03d}",
            rng=rng,
            camera=Camera.sample(rng, self.config.image_size),
            segment=seg.index,
            offset_m=float(rng.uniform(0, seg.length_m / 2)),
            speed_factor=float(rng.uniform(0.9, 1.05)),
            frame_phase_s=step * int(rng.integers(max(1, int(self.config.frame_interval_s / step)))),
        )
        vehicle.plan(self.network)
        vehicle.speed_mps = self.traffic.state(seg, 0.0).speed_mps * vehicle.speed_factor
        return vehicle

    def when(self, t: float) -> datetime:
        """Wall-clock time of simulated second ``t``."""
        return self.start + timedelta(seconds=t)

    def run(self, duration_s: float) -> Iterator[FrameEmission | GpsEmission]:
        """Advance ``duration_s`` seconds, yielding fixes and frames in capture order."""
        cfg = self.config
        steps = int(round(duration_s / cfg.dt))
        for _ in range(steps):
            t = self._t
            self._maybe_add_incidents(t)
            for v in self.vehicles:
                ahead = self.incident_ahead(v, t)
                self._track_event(v, t, ahead)
                if _on_grid(t, 1.0):
                    self._presence_sample(v, t)
                    fix = v.gps(self.network, t, cfg.gps, self.start)
                    if fix is not None:
                        yield GpsEmission(t, (fix.delivered_at - self.start).total_seconds(), fix)
                if cfg.frames and _on_grid(t - v.frame_phase_s, cfg.frame_interval_s) and t >= v.frame_phase_s:
                    yield self._frame(v, t, ahead)
            for v in self.vehicles:
                v.step(self.network, self.traffic, t, cfg.dt)
            self._t = t + cfg.dt
        for vehicle_id in list(self._open):
            self._close(vehicle_id)

    def _maybe_add_incidents(self, t: float) -> None:
        p = self.config.incidents_per_vehicle_hour * self.config.dt / 3600
        for v in self.vehicles:
            if self._rng.random() >= p:
                continue
            weights = self._weights(v.vehicle_id)
            p_type = np.array([weights.get(a, 0.0) for a in ANOMALY_TYPES])
            kind = ANOMALY_TYPES[int(self._rng.choice(len(ANOMALY_TYPES), p=p_type / p_type.sum()))]
            seg = next((self.network.segments[j] for j in v.route if self.network.segments[j].length_m > 30), None)
            if seg is None or self.traffic.incident_on(seg.index, t) is not None:
                continue
            lo, hi = INCIDENT_DURATION_S[kind]
            self.traffic.add(
                Incident(
                    incident_id=f"inc-{self.episode:02d}-{len(self.traffic.incidents):05d}",
                    type=kind,
                    segment=seg.index,
                    offset_m=float(self._rng.uniform(0.3, 0.9)) * seg.length_m,
                    lane=int(self._rng.integers(seg.lanes)),
                    start_s=t,
                    end_s=t + float(self._rng.uniform(lo, hi)),
                    approach_mps=WRONG_WAY_SPEED_MPS if kind == "wrong_way" else 0.0,
                )
            )

    def incident_ahead(self, v: Vehicle, t: float) -> tuple[Incident, float] | None:
        """The incident in view ahead of a vehicle and its distance, if any."""
        seg = self.network.segments[v.segment]
        candidates = [(self.traffic.incident_on(v.segment, t), -v.offset_m)]
        candidates.append((self.traffic.incident_on(v.route[0], t), seg.length_m - v.offset_m))
        for incident, base in candidates:
            if incident is not None:
                distance = base + incident.offset_at(t)
                if INCIDENT_NEAR_M <= distance <= INCIDENT_VIEW_M.get(incident.type, INCIDENT_FAR_M):
                    return incident, distance
        return None

    def _track_event(self, v: Vehicle, t: float, ahead: tuple[Incident, float] | None) -> None:
        current = self._open.get(v.vehicle_id)
        if current is not None and (ahead is None or ahead[0] is not current.incident):
            self._close(v.vehicle_id)
            current = None
        if ahead is not None:
            if current is None:
                self._open[v.vehicle_id] = _OpenEvent(ahead[0], t, t)
            else:
                current.last = t

    def _close(self, vehicle_id: str) -> None:
        ev = self._open.pop(vehicle_id)
        seg = self.network.segments[ev.incident.segment]
        x, y, _ = seg.point_at(ev.incident.offset_at(ev.start))
        lat, lon = self.network.projection.to_latlon(x, y)
        self.events.append(
            AnomalyEvent(
                event_id=f"{ev.incident.incident_id}/{vehicle_id}/{len(self.events)}",
                incident_id=ev.incident.incident_id,
                vehicle_id=vehicle_id,
                type=ev.incident.type,
                start=self.when(ev.start),
                end=self.when(ev.last),
                lat=float(lat),
                lon=float(lon),
                segment_id=seg.segment_id,
            )
        )

    def _presence_sample(self, v: Vehicle, t: float) -> None:
        self._presence[v.segment].append((v.vehicle_id, v.entered_at, t, v.speed_mps))

    def _frame(self, v: Vehicle, t: float, ahead: tuple[Incident, float] | None) -> FrameEmission:
        seg = self.network.segments[v.segment]
        state = self.traffic.state(seg, t)
        when = self.when(t)
        x, y, bearing = seg.point_at(v.offset_m)
        lat, lon = self.network.projection.to_latlon(x, y)
        lighting = lighting_at(float(lat), float(lon), when)
        scene = self._scenes[v.vehicle_id]
        phase = float(self.traffic.phase[seg.index]) * 10
        road = scene.update(seg, state, v.odometer_m, t, phase, seg.length_m - v.offset_m)
        incident, distance = ahead if ahead is not None else (None, None)
        objects = scene.objects(v.camera, incident, distance)
        frame_id = f"{v.vehicle_id}-{self.episode:02d}-{int(round(t * 10)):06d}"
        rng = np.random.default_rng([self._seed, self.episode, zlib.crc32(frame_id.encode())])
        spec = SceneSpec(
            camera=v.camera,
            road=road,
            weather=state.weather,
            lighting=lighting,
            surface=state.surface,
            objects=tuple(objects),
            seed=int(rng.integers(2**31)),
            jpeg_quality=int(rng.integers(55, 96)),
            clutter=float(rng.uniform(0.2, 1.0)),
        )
        anomaly = incident.type if incident is not None else None
        split = self._split_for(v.vehicle_id)
        if split is not None and anomaly is not None and not self._weights(v.vehicle_id).get(anomaly):
            split = "test"  # another vehicle's held-out incident seen from a training vehicle
        truth = FrameTruth(
            frame_id=frame_id,
            vehicle_id=v.vehicle_id,
            captured_at=when,
            episode=self.episode,
            split=split or "none",
            image=f"images/{frame_id}.jpg",
            camera=v.camera.calibration(),
            weather=state.weather,
            lighting=lighting,
            aspects=model_aspects(
                scene_type=seg.scene_type,
                surface=state.surface,
                road_width=seg.road_width,
                accessibility=state.accessibility,
                weather=state.weather,
                lighting=lighting,
                congestion=state.congestion,
            ),
            anomaly=anomaly,
            incident_id=incident.incident_id if incident is not None else None,
            objects=[
                ObjectTruth(
                    track_id=o.track_id,
                    cls=o.cls,
                    box=o.box,
                    x_m=o.x,
                    y_m=o.y,
                    heading_deg=math.degrees(o.heading) % 360,
                    speed_mps=o.speed_mps,
                    state=o.lights,
                )
                for o in objects
                if o.box is not None
            ],
            relations=relations(objects, collision_pairs(incident)),
            ego=EgoTruth(
                lat=float(lat),
                lon=float(lon),
                speed_mps=v.speed_mps,
                accel_mps2=v.accel_mps2,
                heading_deg=bearing,
                segment_id=seg.segment_id,
                offset_m=v.offset_m,
                odometer_m=v.odometer_m,
            ),
            road=RoadTruth(
                lanes_forward=road.lanes_forward,
                lanes_opposite=road.lanes_opposite,
                ego_lane=road.ego_lane,
                lane_width_m=road.lane_width_m,
            ),
        )
        delivery = float(v.rng.uniform(0.1, 0.6))
        return FrameEmission(t, t + delivery, spec, truth)

    def incidents(self) -> list[IncidentTruth]:
        """Every incident placed so far."""
        out = []
        for inc in self.traffic.incidents:
            seg = self.network.segments[inc.segment]
            x, y, _ = seg.point_at(inc.offset_m)
            lat, lon = self.network.projection.to_latlon(x, y)
            out.append(
                IncidentTruth(
                    incident_id=inc.incident_id,
                    type=inc.type,
                    segment_id=seg.segment_id,
                    lat=float(lat),
                    lon=float(lon),
                    lane=inc.lane,
                    start=self.when(inc.start_s),
                    end=self.when(inc.gone_s),
                )
            )
        return out

    def road_conditions(self) -> list[RoadConditionTruth]:
        """True conditions for every segment and window of the run so far (windows aligned to the start)."""
        out = []
        for window in self.config.windows_s:
            for w0 in range(0, int(self._t), window):
                w1 = min(w0 + window, self._t)
                mid = (w0 + w1) / 2
                for seg in self.network.segments:
                    samples = [p for p in self._presence[seg.index] if w0 <= p[2] < w1]
                    states = [self.traffic.state(seg, s) for s in np.arange(w0 + 5, w1, 10.0)] or [
                        self.traffic.state(seg, mid)
                    ]
                    lat, lon = self.network.projection.to_latlon(*seg.point_at(seg.length_m / 2)[:2])
                    out.append(
                        RoadConditionTruth(
                            segment_id=seg.segment_id,
                            window_start=self.when(w0),
                            window_seconds=window,
                            vehicle_count=len({p[0] for p in samples}),
                            trajectory_count=len({(p[0], p[1]) for p in samples}),
                            median_speed_mps=statistics.median(p[3] for p in samples) if samples else None,
                            congestion=Counter(s.congestion for s in states).most_common(1)[0][0],
                            accessibility=Counter(s.accessibility for s in states).most_common(1)[0][0],
                            surface=states[len(states) // 2].surface,
                            weather=states[len(states) // 2].weather,
                            lighting=lighting_at(float(lat), float(lon), self.when(mid)),
                            incidents=sum(
                                1
                                for i in self.traffic.incidents
                                if i.segment == seg.index and i.start_s < w1 and i.end_s > w0
                            ),
                        )
                    )
        return out


def _on_grid(t: float, interval: float) -> bool:
    """Whether ``t`` is (to float precision) a multiple of ``interval``."""
    k = round(t / interval)
    return abs(t - k * interval) < 1e-6
