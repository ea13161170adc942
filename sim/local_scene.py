"""What one vehicle's dashcam sees: the traffic around it, the incident ahead, and their relations.

Each vehicle keeps its own surrounding road users (cars ahead and oncoming, parked cars, pedestrians,
cyclists, traffic lights) in road coordinates, so they keep their track ids from frame to frame and
move with their own speeds. Their number follows the segment's congestion. When the road changes
(another road name or lane layout), the surroundings start afresh.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from roads.network import Segment
from sim.camera import Camera
from sim.scene_spec import RoadView, SceneObject
from sim.traffic import Incident, SegmentState

VIEW_M = 80.0  # how far ahead road users are kept
# An incident is in view (the frame is anomalous) from this far ahead, so that it spans enough pixels
# at 224 px to be seen, until it is this close (then it is beside the camera, out of the picture).
INCIDENT_VIEW_M = {"obstacle": 25.0, "pedestrian_in_lane": 30.0}
INCIDENT_NEAR_M = 8.0
INCIDENT_FAR_M = 40.0
# Track-id ranges: each vehicle's road users count up from vehicle_index * 100_000; traffic lights
# and incident objects have ids derived from the segment and the incident, above these bases.
TRAFFIC_LIGHT_TRACKS = 1_000_000
INCIDENT_TRACKS = 2_000_000
MAX_OBJECTS = 16  # the scene-graph model's query count
# Vehicles per 100 m of lane for each congestion level.
DENSITY = {"free flow": 0.6, "moderate": 1.5, "heavy": 3.0, "standstill": 5.0}
SIZES = {  # length, width, height in metres
    "car": (4.5, 1.8, 1.5),
    "truck": (8.0, 2.5, 3.4),
    "bus": (12.0, 2.55, 3.1),
    "cyclist": (1.8, 0.6, 1.7),
    "pedestrian": (0.5, 0.5, 1.75),
    "traffic light": (0.4, 0.4, 4.0),
    "obstacle": (1.0, 0.8, 0.6),
}
Colour = tuple[int, int, int]
CAR_COLOURS: tuple[Colour, ...] = (
    (235, 235, 235), (25, 25, 28), (170, 172, 178), (110, 112, 118), (150, 20, 25),
    (25, 50, 140), (30, 80, 45), (200, 170, 60), (120, 70, 40), (90, 140, 190),
)  # fmt: skip
BUS_COLOURS = ((20, 90, 180), (20, 90, 180), (235, 235, 235), (220, 180, 30))
CLOTHES = ((30, 30, 40), (160, 30, 40), (40, 70, 150), (200, 200, 190), (90, 110, 60), (220, 150, 40))
OBSTACLE_COLOURS = ((240, 110, 20), (140, 95, 50), (60, 60, 60), (225, 225, 215), (30, 30, 30), (200, 40, 40))


@dataclass
class RoadUser:
    """A road user near the ego vehicle, in road coordinates relative to it."""

    track_id: int
    cls: str
    s: float  # metres ahead of the ego camera along the road
    y: float  # metres left of the ego camera
    heading: float  # radians relative to the road direction
    speed_mps: float
    color: tuple[int, int, int]
    variant: int
    lights: str = "off"
    parked: bool = False


@dataclass
class LocalScene:
    """The surroundings of one vehicle, carried from frame to frame."""

    rng: np.random.Generator
    next_track: int
    road_key: tuple[str, int, int] | None = None
    road: RoadView | None = None
    users: list[RoadUser] = field(default_factory=list)
    last_t: float | None = None
    last_odometer: float = 0.0

    def _new_id(self) -> int:
        self.next_track += 1
        return self.next_track

    def update(
        self, seg: Segment, state: SegmentState, odometer_m: float, t: float, light_phase: float, to_end_m: float
    ) -> RoadView:
        """Move everyone to time ``t`` and refill the road to the density of the segment's congestion."""
        key = (seg.name or seg.segment_id, seg.lanes, seg.lanes_opposite)
        if key != self.road_key or self.road is None:
            self.road_key = key
            self.road = RoadView(
                lanes_forward=seg.lanes,
                lanes_opposite=seg.lanes_opposite,
                ego_lane=seg.lanes_opposite + int(self.rng.integers(seg.lanes)),
                lane_width_m=seg.lane_width_m,
                sidewalks=seg.scene_type in ("urban street", "residential"),
                scene_type=seg.scene_type,
            )
            self.users = []
        else:
            dt = t - (self.last_t if self.last_t is not None else t)
            travelled = odometer_m - self.last_odometer
            for u in self.users:
                u.s += u.speed_mps * math.cos(u.heading) * dt - travelled
                u.y += u.speed_mps * math.sin(u.heading) * dt
            # Those that fell behind leave; one the camera catches up with in its own lane moves over.
            self.users = [
                u
                for u in self.users
                if 3.0 < u.s < VIEW_M and u.cls != "traffic light" and not (abs(u.y) < 1.2 and u.s < 7.0)
            ]
        self.last_t, self.last_odometer = t, odometer_m
        self._fill(seg, state)
        self._traffic_light(seg, t, light_phase, to_end_m)
        return self.road

    def _lane_y(self, lane: int) -> float:
        assert self.road is not None
        return self.road.lane_center_y(lane)

    def _free(self, s: float, y: float, gap: float) -> bool:
        return all(abs(u.s - s) > gap or abs(u.y - y) > 1.5 for u in self.users)

    def _spawn(self, cls: str, s: float, y: float, heading: float, speed: float, **kw: object) -> None:
        palette = {"bus": BUS_COLOURS, "pedestrian": CLOTHES, "cyclist": CLOTHES}.get(cls, CAR_COLOURS)
        color = palette[int(self.rng.integers(len(palette)))]
        variant = int(self.rng.integers(8))
        self.users.append(RoadUser(self._new_id(), cls, s, y, heading, speed, color, variant, **kw))  # type: ignore[arg-type]

    def _vehicle_class(self) -> str:
        r = self.rng.random()
        return "car" if r < 0.82 else "truck" if r < 0.92 else "bus"

    def _fill(self, seg: Segment, state: SegmentState) -> None:
        road = self.road
        assert road is not None
        per_m = DENSITY[state.congestion] / 100
        for lane in range(road.lanes):
            oncoming = lane < road.lanes_opposite
            y = self._lane_y(lane)
            have = sum(1 for u in self.users if abs(u.y - y) < 1.2 and not u.parked and u.cls in SIZES)
            want = int(self.rng.poisson(per_m * (VIEW_M - 8)))
            for _ in range(max(0, want - have)):
                s = float(self.rng.uniform(8, VIEW_M))
                if lane == road.ego_lane and s < 10:
                    continue
                if self._free(s, y, 9.0):
                    speed = state.speed_mps * float(self.rng.uniform(0.9, 1.1))
                    lights = "head" if oncoming else ("brake" if state.congestion != "free flow" else "off")
                    self._spawn(self._vehicle_class(), s, y, math.pi if oncoming else 0.0, speed, lights=lights)
        if road.sidewalks:
            self._fill_kerb(road)

    def _fill_kerb(self, road: RoadView) -> None:
        urban = road.scene_type == "urban street"
        parked_y = road.right_edge_y - 1.1  # half on the kerb, as Helsinki streets park
        if sum(u.parked for u in self.users) < self.rng.poisson(2.0 if urban else 3.0):
            s = float(self.rng.uniform(8, VIEW_M))
            if self._free(s, parked_y, 6.0):
                self._spawn("car", s, parked_y, 0.0, 0.0, parked=True)
        for side_y in (road.left_edge_y + 2.0, road.right_edge_y - 3.0):
            walkers = sum(1 for u in self.users if u.cls == "pedestrian" and abs(u.y - side_y) < 1.5)
            if walkers < self.rng.poisson(2.5 if urban else 1.0):
                s = float(self.rng.uniform(6, 45))
                heading = 0.0 if self.rng.random() < 0.5 else math.pi
                self._spawn("pedestrian", s, side_y + float(self.rng.uniform(-0.6, 0.6)), heading, 1.3)
        cyclists = sum(1 for u in self.users if u.cls == "cyclist")
        if cyclists == 0 and self.rng.random() < 0.15:
            self._spawn("cyclist", float(self.rng.uniform(10, 40)), road.right_edge_y + 0.7, 0.0, 5.0)

    def _traffic_light(self, seg: Segment, t: float, phase: float, to_end_m: float) -> None:
        road = self.road
        assert road is not None
        signalled = seg.out_degree >= 2 and seg.road_class in ("primary", "secondary", "tertiary")
        if not signalled or not 6.0 < to_end_m < 60.0:
            return
        cycle = (t + phase) % 60.0
        state = "green" if cycle < 27 else "amber" if cycle < 30 else "red"
        self.users.append(
            RoadUser(TRAFFIC_LIGHT_TRACKS + seg.index, "traffic light", to_end_m, road.right_edge_y - 1.5, 0.0, 0.0,
                     (40, 40, 40), 0, lights=state)
        )  # fmt: skip

    def objects(self, camera: Camera, incident: Incident | None, incident_distance: float | None) -> list[SceneObject]:
        """Everyone in view as scene objects with their pixel boxes, plus the incident's objects."""
        users = list(self.users)
        if incident is not None and incident_distance is not None and self.road is not None:
            lane_y = self._lane_y(self.road.lanes_opposite + min(incident.lane, self.road.lanes_forward - 1))
            # The incident's lane is clear up to it (traffic there has stopped behind the camera or moved over).
            users = [u for u in users if u.s > incident_distance + 8 or abs(u.y - lane_y) > 1.5 or u.parked]
            users = self._incident_users(incident, incident_distance, lane_y) + users
        objects = []
        for u in users:
            length, width, height = SIZES[u.cls]
            if u.cls == "obstacle":
                length, width, height = (0.6 + 0.15 * u.variant, 0.6 + 0.1 * u.variant, 0.35 + 0.08 * u.variant)
            box = camera.box(u.s, u.y, u.heading, length, width, height)
            if box is None:
                continue
            objects.append(
                SceneObject(u.track_id, u.cls, u.s, u.y, u.heading, length, width, height, u.speed_mps, u.color,
                            u.lights, u.variant, box)
            )  # fmt: skip
        # The incident's objects come first so that the object limit never drops them.
        return sorted(objects[:MAX_OBJECTS], key=lambda o: o.x)

    def _incident_users(self, incident: Incident, distance: float, lane_y: float) -> list[RoadUser]:
        rng = np.random.default_rng(zlib.crc32(incident.incident_id.encode()))
        base = _incident_tracks(incident)
        colour = CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))]
        if incident.type == "collision":
            other = CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))]
            return [
                RoadUser(base, "car", distance, lane_y + 0.3, 0.5, 0.0, colour, 1, lights="hazard"),
                RoadUser(base + 1, "car", distance + 2.2, lane_y - 0.4, -0.9, 0.0, other, 2, lights="hazard"),
            ]
        if incident.type == "stopped_vehicle":
            cls = "truck" if rng.random() < 0.25 else "car"
            return [RoadUser(base, cls, distance, lane_y, 0.0, 0.0, colour, int(rng.integers(8)), lights="hazard")]
        if incident.type == "pedestrian_in_lane":
            clothes = CLOTHES[int(rng.integers(len(CLOTHES)))]
            heading = math.pi / 2 if rng.random() < 0.5 else -math.pi / 2
            return [RoadUser(base, "pedestrian", distance, lane_y + float(rng.uniform(-0.8, 0.8)), heading, 0.8,
                             clothes, int(rng.integers(8)))]  # fmt: skip
        if incident.type == "wrong_way":
            return [RoadUser(base, "car", distance, lane_y, math.pi, incident.approach_mps, colour,
                             int(rng.integers(8)), lights="head")]  # fmt: skip
        kind = int(rng.integers(4))
        colour = OBSTACLE_COLOURS[int(rng.integers(len(OBSTACLE_COLOURS)))]
        return [RoadUser(base, "obstacle", distance, lane_y + float(rng.uniform(-0.6, 0.6)), 0.0, 0.0, colour, kind)]


def _incident_tracks(incident: Incident) -> int:
    """The first track id of an incident's objects (a collision has two: this and the next)."""
    return INCIDENT_TRACKS + int(incident.incident_id.rsplit("-", 1)[-1]) * 4


def collision_pairs(incident: Incident | None) -> set[tuple[int, int]]:
    """The (subject, object) track ids that collide in an incident's objects (none unless a collision)."""
    if incident is None or incident.type != "collision":
        return set()
    base = _incident_tracks(incident)
    return {(base, base + 1)}


def relations(objects: list[SceneObject], collisions: set[tuple[int, int]]) -> list[tuple[int, str, int]]:
    """Ground-truth (subject track, predicate, object track) triplets from positions, headings and speeds."""
    out: list[tuple[int, str, int]] = []
    movers = ("car", "truck", "bus", "cyclist")
    for a in objects:
        for b in objects:
            if a is b or a.cls == "traffic light" or b.cls == "traffic light":
                continue
            dx, dy = a.x - b.x, a.y - b.y
            same_way = abs(math.remainder(a.heading - b.heading, 2 * math.pi)) < 0.5
            moving = a.speed_mps > 0.5 and b.speed_mps > 0.5
            if (a.track_id, b.track_id) in collisions:
                out.append((a.track_id, "collides with", b.track_id))
            elif a.cls in movers and b.cls in movers and same_way and moving and abs(dy) < 1.2 and -30 < dx < -3:
                out.append((a.track_id, "following", b.track_id))
            elif (a.cls in movers and b.cls in movers and same_way and moving and 1.5 < abs(dy) < 5
                  and abs(dx) < 6 and a.speed_mps > b.speed_mps + 1):  # fmt: skip
                out.append((a.track_id, "passing", b.track_id))
            elif (a.cls in ("pedestrian", "cyclist") and abs(math.sin(a.heading)) > 0.7 and b.cls in movers
                  and 2 < dx < 25 and abs(dy) < 3):  # fmt: skip
                out.append((a.track_id, "crossing", b.track_id))
            elif abs(dy) < 2 and 2 < dx < 40:
                out.append((a.track_id, "in front of", b.track_id))
            elif abs(dx) < 8 and abs(dy) > 2:
                out.append((a.track_id, "left of" if dy > 0 else "right of", b.track_id))
    return out
