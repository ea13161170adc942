"""Ground-truth records: what the simulator knows about every frame, fix, incident and road segment.

These pydantic models are the dataset's annotation format (one JSON object per line in the export)
and what the evaluation commands score the pipeline against. ``fleetscope simulate --schema`` prints
their JSON schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from records.messages import CameraCalibration

TRUTH_VERSION = 2


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObjectTruth(_Record):
    """One object in a frame, with its kinematics on the ground plane (ego frame: x forward, y left)."""

    track_id: int = Field(description="stable across a vehicle's consecutive frames while the object stays in view")
    cls: str = Field(description="one of models.vocab.OBJECT_CLASSES")
    box: tuple[float, float, float, float] = Field(description="u1, v1, u2, v2 in pixels, inside the image")
    x_m: float
    y_m: float
    heading_deg: float = Field(description="facing relative to the ego vehicle: 0 same way, 180 towards it")
    speed_mps: float
    state: str = Field(description="lights: off, brake, hazard, head; traffic lights: red, amber, green")


class EgoTruth(_Record):
    """The camera vehicle at capture time."""

    lat: float
    lon: float
    speed_mps: float
    accel_mps2: float
    heading_deg: float = Field(description="compass bearing of travel")
    segment_id: str
    offset_m: float = Field(description="distance from the segment's start")
    odometer_m: float = Field(description="distance travelled since the run started")


class RoadTruth(_Record):
    """The carriageway in view (ego frame: y to the left, lanes numbered from the left edge)."""

    lanes_forward: int
    lanes_opposite: int = Field(description="lanes carrying oncoming traffic (the leftmost ones)")
    ego_lane: int = Field(description="the lane the camera vehicle drives in, centred on y = 0")
    lane_width_m: float

    @property
    def left_edge_y(self) -> float:
        """y of the carriageway's left edge in metres."""
        return (self.ego_lane + 0.5) * self.lane_width_m

    @property
    def centre_line_y(self) -> float:
        """y of the line between oncoming and forward lanes."""
        return self.left_edge_y - self.lanes_opposite * self.lane_width_m

    @property
    def right_edge_y(self) -> float:
        """y of the carriageway's right edge."""
        return self.left_edge_y - (self.lanes_forward + self.lanes_opposite) * self.lane_width_m


class FrameTruth(_Record):
    """Everything true about one frame."""

    frame_id: str
    vehicle_id: str
    captured_at: datetime
    episode: int
    split: str = Field(description="train, val or test")
    image: str = Field(description="path of the JPEG relative to the dataset root")
    camera: CameraCalibration
    weather: str
    lighting: str
    aspects: dict[str, str] = Field(description="one label per ST-CLIP aspect (models.vocab.ASPECTS)")
    anomaly: str | None = Field(description="the anomaly type in view, or null")
    incident_id: str | None
    objects: list[ObjectTruth]
    relations: list[tuple[int, str, int]] = Field(description="(subject track_id, predicate, object track_id)")
    ego: EgoTruth
    road: RoadTruth


class GpsTruth(_Record):
    """One GPS fix as sent, with where the vehicle really was."""

    vehicle_id: str
    ts: datetime
    delivered_at: datetime = Field(description="when the fix reaches the broker (late fixes arrive out of order)")
    lat: float
    lon: float
    speed_mps: float | None
    heading_deg: float | None
    accuracy_m: float
    true_lat: float
    true_lon: float
    true_speed_mps: float
    segment_id: str
    offset_m: float


class IncidentTruth(_Record):
    """An anomaly on the road, whoever sees it."""

    incident_id: str
    type: str
    segment_id: str
    lat: float
    lon: float
    lane: int = Field(description="forward lane from the left")
    start: datetime
    end: datetime


class AnomalyEvent(_Record):
    """One vehicle seeing one incident ahead, from the first to the last moment it is in view."""

    event_id: str
    incident_id: str
    vehicle_id: str
    type: str
    start: datetime
    end: datetime
    lat: float
    lon: float
    segment_id: str


class RoadConditionTruth(_Record):
    """One segment over one time window."""

    segment_id: str
    window_start: datetime
    window_seconds: int
    vehicle_count: int = Field(description="distinct fleet vehicles on the segment during the window")
    trajectory_count: int = Field(description="fleet passages (a vehicle entering twice counts twice)")
    median_speed_mps: float | None = Field(description="median of fleet speeds sampled every second on the segment")
    congestion: str = Field(description="most frequent congestion label over the window")
    accessibility: str
    surface: str
    weather: str
    lighting: str
    incidents: int = Field(description="incidents active on the segment during the window")


def write_jsonl(path: Path, records: Sequence[BaseModel]) -> None:
    """One JSON object per line, in order (the dataset's annotation files)."""
    with path.open("w") as f:
        f.writelines(r.model_dump_json() + "\n" for r in records)
