"""Alert rules, declared in YAML (``alerts/rules.yaml``): what in a scene counts towards which alert.

A rule has a type, conditions on one frame (any of them may hold), persistence (k of a vehicle's
last n frames) and severity thresholds. This module loads and checks the file and scores one frame
against a rule; ``fusion.incidents`` applies persistence and turns matches into alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import ConfigError
from models.vocab import ANOMALY_PROMPTS, ANOMALY_TYPES, OBJECT_CLASSES, PREDICATES
from records.messages import AnomalyResult, KinematicEvent, Scene

DEFAULT_RULES = Path(__file__).with_name("rules.yaml")
KINEMATIC_EVENTS: tuple[str, ...] = get_args(KinematicEvent.model_fields["type"].annotation)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnomalyCondition(_Strict):
    """SA-CLIP: the frame shows anomaly ``type`` with at least ``min_score``.

    Alone, ``type`` must be the most probable anomalous relation and ``min_score`` applies to the whole
    anomalous probability mass. With ``grouped_with``, the type's relation and those look-alikes (a
    crash is also a car standing with hazard lights) are scored together: their summed probability
    must reach ``min_score`` and the type's own share of that sum ``min_share``. The sum is capped at 1:
    an SA-CLIP that scores each type against the normal prompts alone (``models.sa_clip``, "normals")
    can give two look-alikes a probability near 1 each.
    """

    type: str
    min_score: float = Field(ge=0, le=1)
    grouped_with: tuple[str, ...] = ()
    min_share: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _known(self) -> AnomalyCondition:
        for name in (self.type, *self.grouped_with):
            if name not in ANOMALY_TYPES:
                raise ValueError(f"anomaly type {name!r} is not one of {', '.join(ANOMALY_TYPES)}")
        if self.type in self.grouped_with:
            raise ValueError(f"grouped_with repeats the condition's own type {self.type!r}")
        if self.min_share and not self.grouped_with:
            raise ValueError("min_share needs grouped_with (the share is of the group's probability)")
        return self

    def score(self, anomaly: AnomalyResult) -> float | None:
        """The frame's score under this condition, or None when it does not hold."""
        if not self.grouped_with:
            ok = anomaly.type == self.type and anomaly.score >= self.min_score
            return anomaly.score if ok else None
        own = anomaly.relation_scores.get(ANOMALY_PROMPTS[self.type], 0.0)
        summed = own + sum(anomaly.relation_scores.get(ANOMALY_PROMPTS[t], 0.0) for t in self.grouped_with)
        group = min(summed, 1.0)
        ok = group >= self.min_score and summed > 0 and own / summed >= self.min_share
        return group if ok else None


class TripletCondition(_Strict):
    """Scene graph: some triplet with ``predicate`` scores at least ``min_score``."""

    predicate: str
    min_score: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _known(self) -> TripletCondition:
        if self.predicate not in PREDICATES:
            raise ValueError(f"predicate {self.predicate!r} is not one of {', '.join(PREDICATES)}")
        return self


class KinematicCondition(_Strict):
    """Kinematics: an ``event`` of this type (``fusion.events``) scores at least ``min_score``."""

    event: str
    min_score: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _known(self) -> KinematicCondition:
        if self.event not in KINEMATIC_EVENTS:
            raise ValueError(f"kinematic event {self.event!r} is not one of {', '.join(KINEMATIC_EVENTS)}")
        return self


class ObjectCondition(_Strict):
    """Scene graph and camera geometry: an object of class ``label``, detected with at least
    ``min_score``, stands on the road in our path: at most ``ahead_m`` in front of the camera and at
    most ``lateral_m`` to either side of its axis (our lane). Objects the camera geometry cannot
    place on the ground never count. With ``min_facing``, the object must also face the camera with
    at least that probability (a car showing us its front in our lane drives the wrong way)."""

    label: str
    min_score: float = Field(ge=0, le=1)
    ahead_m: float = Field(30.0, gt=0)
    lateral_m: float = Field(1.75, gt=0)
    min_facing: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _known(self) -> ObjectCondition:
        if self.label not in OBJECT_CLASSES:
            raise ValueError(f"object class {self.label!r} is not one of {', '.join(OBJECT_CLASSES)}")
        return self

    def score(self, scene: Scene) -> float | None:
        """The best score of such an object in the frame, or None when there is none."""
        scores = [
            o.score
            for o in scene.objects
            if o.label == self.label
            and o.score >= self.min_score
            and o.x_m is not None
            and o.y_m is not None
            and 0 < o.x_m <= self.ahead_m
            and abs(o.y_m) <= self.lateral_m
            and (self.min_facing is None or (o.facing is not None and o.facing >= self.min_facing))
        ]
        return max(scores) if scores else None


class Condition(_Strict):
    """One condition: exactly one of its fields is set."""

    anomaly: AnomalyCondition | None = None
    triplet: TripletCondition | None = None
    kinematic: KinematicCondition | None = None
    object: ObjectCondition | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        if sum(c is not None for c in (self.anomaly, self.triplet, self.kinematic, self.object)) != 1:
            raise ValueError("a condition has exactly one of: anomaly, triplet, kinematic, object")
        return self

    def score(self, scene: Scene, events: Sequence[KinematicEvent] = ()) -> float | None:
        """The frame's score under this condition, or None when it does not hold."""
        if self.anomaly is not None:
            return self.anomaly.score(scene.anomaly)
        if self.object is not None:
            return self.object.score(scene)
        if self.kinematic is not None:
            scores = [e.score for e in events if e.type == self.kinematic.event]
            best = max(scores, default=-1.0)
            return best if best >= self.kinematic.min_score else None
        assert self.triplet is not None
        scores = [t.score for t in scene.triplets if t.predicate == self.triplet.predicate]
        best = max(scores, default=-1.0)
        return best if best >= self.triplet.min_score else None


class Persistence(_Strict):
    """At least ``k`` of the vehicle's last ``n`` frames, all within ``within_s`` seconds, match."""

    k: int = Field(1, ge=1)
    n: int = Field(1, ge=1)
    within_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _k_le_n(self) -> Persistence:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) cannot exceed n ({self.n})")
        return self


class Severity(_Strict):
    """Score thresholds: at or above ``critical``, at or above ``major``, else minor."""

    critical: float = Field(ge=0, le=1)
    major: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Severity:
        if self.major > self.critical:
            raise ValueError(f"major ({self.major}) must not exceed critical ({self.critical})")
        return self

    def grade(self, score: float) -> Literal["critical", "major", "minor"]:
        """The severity of an alert with this score."""
        return "critical" if score >= self.critical else "major" if score >= self.major else "minor"


class Rule(_Strict):
    """One alert type: when a frame counts towards it, how persistent it must be, how severe it is."""

    type: str = Field(min_length=1)
    any: tuple[Condition, ...] = Field(min_length=1)
    persistence: Persistence = Persistence()
    severity: Severity

    def score(self, scene: Scene, events: Sequence[KinematicEvent] = ()) -> float | None:
        """The frame's score for this rule (the best condition that holds), or None when none holds."""
        scores = [s for c in self.any if (s := c.score(scene, events)) is not None]
        return max(scores) if scores else None


class RuleSet(_Strict):
    """All alert rules, one per type."""

    rules: tuple[Rule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_per_type(self) -> RuleSet:
        types = [r.type for r in self.rules]
        if dupes := sorted({t for t in types if types.count(t) > 1}):
            raise ValueError(f"one rule per alert type; repeated: {', '.join(dupes)}")
        return self


def load_rules(path: Path = DEFAULT_RULES) -> RuleSet:
    """Read and check a rules file; a mistake raises ConfigError saying where and what."""
    hint = "fix the file or point FLEETSCOPE_WORKER__ALERT_RULES at another"
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"alert rules: cannot read {path}: {exc.strerror}; {hint}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"alert rules: {path} is not valid YAML: {exc}; {hint}") from None
    try:
        return RuleSet.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"alert rules in {path}: {problems}; {hint}") from None
