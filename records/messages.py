"""Message schemas of every fleetscope topic, versioned and validated on ingest.

Each message is a UTF-8 JSON object with ``schema_version``. Binary payloads (JPEG, dead-lettered
originals) are standard base64 strings. Producers, the Faust agents, sinks and tests all use these
classes; ``decode`` turns raw bytes into a message or raises ``InvalidMessage`` with a short reason.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from types import UnionType
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
)

from core.errors import InvalidMessage
from models.vocab import ST_CONTEXT_DIM

SCHEMA_VERSION: Literal[1] = 1


def _b64decode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not valid base64: {exc}") from None


Base64Bytes = Annotated[
    bytes,
    PlainValidator(_b64decode),
    PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), return_type=str),
]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Id = Annotated[str, Field(min_length=1, max_length=128)]


class Message(BaseModel):
    """Base of every topic's message."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: Literal[1] = SCHEMA_VERSION

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()


class CameraCalibration(BaseModel):
    """Pinhole intrinsics (pixels) and mounting of the dashcam."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    fx: Annotated[Finite, Field(gt=0)]
    fy: Annotated[Finite, Field(gt=0)]
    cx: Finite
    cy: Finite
    width: Annotated[int, Field(gt=0, le=8192)]
    height: Annotated[int, Field(gt=0, le=8192)]
    mounting_height_m: Annotated[Finite, Field(gt=0, le=10)]
    pitch_deg: Annotated[Finite, Field(ge=-45, le=45)] = 0.0


class Frame(Message):
    """``fleet.frames``: one dashcam frame, keyed by vehicle_id."""

    vehicle_id: Id
    frame_id: Id
    captured_at: AwareDatetime
    jpeg: Base64Bytes
    camera: CameraCalibration


class GpsFix(Message):
    """``fleet.gps``: one GPS fix, keyed by vehicle_id."""

    vehicle_id: Id
    ts: AwareDatetime
    lat: Annotated[Finite, Field(ge=-90, le=90)]
    lon: Annotated[Finite, Field(ge=-180, le=180)]
    speed_mps: Annotated[Finite, Field(ge=0, le=100)] | None = None
    heading_deg: Annotated[Finite, Field(ge=0, lt=360)] | None = None
    accuracy_m: Annotated[Finite, Field(ge=0)] | None = None


class AttachedFix(BaseModel):
    """The GPS fix attached to a frame, with its time offset from the frame."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ts: AwareDatetime
    lat: float
    lon: float
    speed_mps: float | None = None
    heading_deg: float | None = None
    accuracy_m: float | None = None
    offset_s: float = Field(description="fix time - frame time")


class ObservedFix(BaseModel):
    """One map-matched fix as a segment window counts it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    vehicle_id: Id
    ts: AwareDatetime
    speed_mps: float | None = Field(description="GPS speed; None for a late fix without receiver speed")
    hard_braking: bool = False


class SegmentObservations(Message):
    """``fleet.segments.observations`` (internal): matched fixes on one road segment, keyed by segment_id."""

    segment_id: Id
    fixes: list[ObservedFix]


class SegmentWindow(BaseModel):
    """One road segment's traffic in one window, as the segment-window table holds it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    segment_id: str
    window_start: AwareDatetime
    window_seconds: int
    fixes: int
    vehicles: int
    trajectories: int = Field(description="passes of a vehicle through the segment (a gap > 30 s starts a new one)")
    median_speed_mps: float | None
    hard_brakes: int


class SegmentContext(BaseModel):
    """The road segment a frame was taken on, and that segment's window at the time (when known)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    segment_id: str
    offset_m: float
    committed: bool = Field(description="False: the matcher's tentative position for the newest fixes")
    window: SegmentWindow | None = None


class FramePosition(BaseModel):
    """Where a frame is in ``fleet.frames``: an alerted frame's JPEG is read back from there as evidence."""

    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class EnrichedFrame(Message):
    """``fleet.frames.enriched`` (internal): a validated frame with its GPS fix and ST context.

    Keyed by segment_id when the frame was located on a segment, so that the inference worker owning
    that segment's window state joins it (co-partitioned with ``fleet.segments.observations``).
    """

    frame: Frame
    gps: AttachedFix | None
    cell_id: str | None
    segment: SegmentContext | None = None
    st_context: Annotated[list[float], Field(min_length=ST_CONTEXT_DIM, max_length=ST_CONTEXT_DIM)]
    produced_at: AwareDatetime | None = Field(None, description="Kafka timestamp of the original frame")
    source: FramePosition | None = Field(None, description="the original frame's place in fleet.frames")
    ingested_at: AwareDatetime


class AspectResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str
    probs: dict[str, float]


class AnomalyResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    score: float = Field(description="SA-CLIP probability mass on anomalous relation prompts")
    type: str = Field(description="anomaly type of the most probable anomalous prompt")
    relation_scores: dict[str, float]


class SceneObject(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 normalised to 0..1")
    label: str
    score: float
    x_m: float | None = Field(
        None,
        description="metres ahead of the camera (ground plane through the camera calibration); null off the ground",
    )
    y_m: float | None = Field(None, description="metres to the left of the camera")
    facing: float | None = Field(
        None, ge=0, le=1, description="probability that the object faces the camera (shows us its front)"
    )


class ObjectMotion(BaseModel):
    """One object of a frame as the vehicle's tracker follows it (``kinematics.tracking``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    object: int = Field(description="index into the scene's objects")
    track_id: int = Field(description="stable over the vehicle's consecutive frames while the object stays in view")
    speed_mps: float | None = Field(description="over the ground; null until the track is confirmed (seen 3 times)")
    direction_deg: float | None = Field(description="movement relative to our heading, counter-clockwise (90 = left)")
    closing_mps: float | None = Field(description="how fast its distance to us shrinks; positive = approaching")


class KinematicEvent(BaseModel):
    """Something the kinematics of one frame say an alert rule may care about."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["hard_braking", "closing_fast", "wrong_way"]
    score: float = Field(ge=0, le=1, description="how strong, 0..1 (see fusion.events)")
    track_id: int | None = Field(description="the object concerned; null for the ego vehicle")
    detail: str = Field(description="the measured quantity in words")


class Triplet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    subject: int = Field(description="index into objects")
    predicate: str
    object: int
    score: float


class TrackedTriplet(BaseModel):
    """A triplet linked over the vehicle's frames by the track ids of its subject and object."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    subject_track: int
    predicate: str
    object_track: int
    start: AwareDatetime = Field(description="capture time of the first frame that showed it")
    end: AwareDatetime = Field(description="capture time of the latest frame that showed it (this one)")


class SceneKinematics(BaseModel):
    """What the vehicle's tracker adds to a scene (``fusion.events``), in the vehicle's frame order."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    objects: list[ObjectMotion] = Field(description="the scene's objects on the ground, with track ids and motion")
    triplets: list[TrackedTriplet] = Field(description="the scene's triplets between tracked objects")
    events: list[KinematicEvent] = Field(description="hard braking, closing fast, wrong way")


class Scene(Message):
    """Every model output for one frame; on ``fleet.scenes`` with the vehicle's tracks and kinematics too.

    Inference writes it to the internal ``fleet.scenes.inferred`` without ``kinematics``; fusion, which
    sees each vehicle's frames in order, tracks its objects, adds ``kinematics`` and publishes it to
    ``fleet.scenes`` once it is in PostgreSQL.
    """

    frame_id: Id
    vehicle_id: Id
    captured_at: AwareDatetime
    gps: AttachedFix | None
    cell_id: str | None
    segment_id: str | None = None
    aspects: dict[str, AspectResult]
    anomaly: AnomalyResult
    objects: list[SceneObject]
    triplets: list[Triplet]
    kinematics: SceneKinematics | None = Field(
        None,
        description="tracks and kinematic events; null before fusion, and for a frame older than its vehicle's latest",
    )
    produced_at: AwareDatetime | None = None
    source: FramePosition | None = Field(None, description="the frame's place in fleet.frames (its JPEG is there)")
    ingested_at: AwareDatetime
    inferred_at: AwareDatetime


class Location(BaseModel):
    """A WGS84 position in degrees."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    lat: float
    lon: float


class Alert(Message):
    """``fleet.alerts``: one incident; re-sent with the same alert_id when its evidence grows.

    Incidents of several vehicles on one road segment are one alert (``fusion.incidents``, and the
    sink that merges them): ``vehicles`` lists every vehicle that saw it and ``confidence`` rises
    with each. Consumers should upsert by ``alert_id``. The JSON schema is ``docs/alert.schema.json``.
    """

    alert_id: Id = Field(description="stable id of the incident; the topic's key")
    type: str = Field(description="alert rule type, such as collision or stopped_vehicle (alerts/rules.yaml)")
    severity: Literal["critical", "major", "minor"] = Field(description="graded on score by the rule")
    vehicle_id: Id = Field(description="the first vehicle that reported the incident")
    vehicles: list[Id] = Field(default_factory=list, description="every vehicle that reported it, sorted")
    confidence: float = Field(0.0, ge=0, le=1, description="1 - product over vehicles of (1 - their best score)")
    location: Location | None = Field(description="GPS position of the first vehicle when it was first stored")
    cell_id: str | None = Field(description="grid cell of that position")
    segment_id: str | None = Field(None, description="map-matched road segment; null off the network")
    window_start: AwareDatetime = Field(description="capture time of the incident's first matching frame")
    window_end: AwareDatetime = Field(description="capture time of its latest matching frame")
    score: float = Field(description="highest frame score of the incident (SA-CLIP, scene graph or kinematics), 0..1")
    evidence: dict[str, Any] = Field(
        description="rule, persistence, frame_ids, frame_scores, relation_scores, triplets, kinematics and"
        " vehicle_scores (best score per vehicle) of the highest-scoring report"
    )
    raised_at: AwareDatetime = Field(description="wall-clock time the worker raised this update")


class DeadLetter(Message):
    """``fleet.deadletter``: a message that could not be processed, kept whole with the reason."""

    source_topic: str
    partition: int
    offset: int
    key: str | None
    stage: str
    reason: str
    error: str
    payload: Base64Bytes
    failed_at: AwareDatetime


# The messages of the topics outside systems produce or consume, by topic (``fleetscope message-schema``).
MESSAGES: dict[str, type[Message]] = {
    "frames": Frame,
    "gps": GpsFix,
    "scenes": Scene,
    "alerts": Alert,
    "deadletter": DeadLetter,
}


M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Parsed(Generic[M]):
    """A decoded message, with the fields it carried that this schema version does not know."""

    message: M
    unknown_fields: tuple[str, ...] = ()


def decode(model: type[M], raw: bytes | None) -> M:
    """Parse and validate one message; raise InvalidMessage(reason, detail) when it is not a valid ``model``."""
    return parse(model, raw).message


def parse(model: type[M], raw: bytes | None) -> Parsed[M]:
    """``decode``, and the dotted paths of the unknown fields it ignored.

    Within a schema version a producer may add fields (a firmware update): they are ignored, not
    fatal. A new major version is the explicit break (``unsupported_version``).
    """
    if raw is None:
        raise InvalidMessage("empty", "message has no value")
    try:
        return Parsed(model.model_validate_json(raw))  # one pass in pydantic-core: a GPS fix in 1.8 us instead of 6.3
    except ValidationError:
        pass  # bad input, or unknown fields, is rare: find out what is wrong with it the slow way, below
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidMessage("not_json", str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise InvalidMessage("not_object", f"expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise InvalidMessage(
            "unsupported_version", f"schema_version {version!r:.40}; this worker reads {SCHEMA_VERSION}"
        )
    unknown: list[str] = []
    known = _known_fields(model, data, "", unknown)
    try:
        return Parsed(model.model_validate(known), tuple(unknown[:MAX_UNKNOWN_REPORTED]))
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise InvalidMessage(f"invalid_{fields[0].split('.')[0]}" if fields else "invalid", detail) from None


MAX_UNKNOWN_REPORTED = 20  # unknown fields named per message (metrics, logs)


def _known_fields(model: type[BaseModel], data: dict[str, Any], path: str, unknown: list[str]) -> dict[str, Any]:
    """``data`` without the keys ``model`` (and the models nested in it) does not declare."""
    out = {}
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            unknown.append(f"{path}{key}")
        else:
            out[key] = _known_value(field.annotation, value, f"{path}{key}.", unknown)
    return out


def _known_value(annotation: Any, value: Any, path: str, unknown: list[str]) -> Any:
    """``value`` with unknown keys removed wherever ``annotation`` expects a model (in lists, dicts, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _known_fields(annotation, value, path, unknown) if isinstance(value, dict) else value
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _known_value(args[0], value, path, unknown)
    if origin in (list, tuple) and isinstance(value, list) and args:
        return [_known_value(args[0], v, path, unknown) for v in value]
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return {k: _known_value(args[1], v, path, unknown) for k, v in value.items()}
    models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    if origin in (Union, UnionType) and len(models) == 1:
        return _known_value(models[0], value, path, unknown)
    return value


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
