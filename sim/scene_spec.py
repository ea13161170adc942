"""What one dashcam frame shows: the road, the conditions and the objects, in the ego frame.

The world (``sim.world``) composes a ``SceneSpec`` from its state; the renderer (``sim.render``)
draws it. Both sides agree on these records only, so the renderer never sees the road graph and
the world never touches pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.camera import Camera


@dataclass(frozen=True)
class RoadView:
    """The straight road ahead of the camera.

    Lanes are numbered from the left edge of the carriageway: the first ``lanes_opposite`` carry
    oncoming traffic (right-hand traffic), the rest run in the ego direction. The ego vehicle drives in
    the centre of lane ``ego_lane``, so the road's left edge is at y = (ego_lane + 0.5) * lane_width_m.
    """

    lanes_forward: int
    lanes_opposite: int
    ego_lane: int
    lane_width_m: float
    sidewalks: bool
    scene_type: str  # a vocab.SCENE_TYPES label: decides the background (buildings, trees, barriers, tunnel walls)

    @property
    def lanes(self) -> int:
        """All lanes, both directions."""
        return self.lanes_forward + self.lanes_opposite

    @property
    def left_edge_y(self) -> float:
        """y of the carriageway's left edge (metres, ego frame)."""
        return (self.ego_lane + 0.5) * self.lane_width_m

    def lane_center_y(self, lane: int) -> float:
        """y of a lane's centre line (metres, ego frame)."""
        return self.left_edge_y - (lane + 0.5) * self.lane_width_m

    @property
    def right_edge_y(self) -> float:
        """y of the carriageway's right edge (metres, ego frame)."""
        return self.left_edge_y - self.lanes * self.lane_width_m


@dataclass(frozen=True)
class SceneObject:
    """One object on the ground plane, as ground truth and as drawing instructions."""

    track_id: int
    cls: str  # a vocab.OBJECT_CLASSES label
    x: float  # metres forward of the camera (object centre)
    y: float  # metres left of the camera
    heading: float  # radians, facing relative to the ego forward axis: 0 = same way, pi = towards the camera
    length: float
    width: float
    height: float
    speed_mps: float  # over the ground, along ``heading``
    color: tuple[int, int, int]
    lights: str = "off"  # "off", "brake", "hazard", "head"; for traffic lights: "red", "amber", "green"
    variant: int = 0  # appearance variant (body style, obstacle kind), stable per track
    box: tuple[float, float, float, float] | None = None  # pixel box (u1, v1, u2, v2), filled by the world


@dataclass(frozen=True)
class SceneSpec:
    """Everything the renderer needs for one frame; deterministic given ``seed``."""

    camera: Camera
    road: RoadView
    weather: str  # vocab.WEATHER
    lighting: str  # vocab.LIGHTING
    surface: str  # vocab.SURFACES
    objects: tuple[SceneObject, ...]
    seed: int  # clutter, textures, sensor noise
    jpeg_quality: int = 85
    clutter: float = 0.5  # 0..1: how many poles, signs, trees and facade details to draw
