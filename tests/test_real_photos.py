"""The real-photo check: where its photos come from, and how a model's answer is held against a photo's facts."""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image

from alerts.rules import load_rules
from evaluation.real_photos import Photo, as_jpeg, judge, load_manifest
from models.vocab import ANOMALY_PROMPTS
from records.messages import AnomalyResult

NORMAL = {"weather_lighting": "clear day", "congestion": "free flow", "scene_type": "urban street"}
RULES = load_rules()  # the shipped alert rules: a normal photo must meet none of their SA-CLIP conditions


def sa_clip(kind: str, score: float, **relations: float) -> AnomalyResult:
    """SA-CLIP's result with its top anomaly ``kind`` at ``score`` and the given anomaly types' relation scores."""
    scores = {ANOMALY_PROMPTS[t]: v for t, v in relations.items()}
    return AnomalyResult(score=score, type=kind, relation_scores=scores)


def photo(**facts: bool | None) -> Photo:
    return Photo("p", "pkg", "a/b.jpg", "0" * 64, "a street", facts)


def test_every_photo_names_a_known_package_a_checksum_and_only_known_facts() -> None:
    packages, photos = load_manifest()
    assert len(photos) >= 10 and len({p.id for p in photos}) == len(photos)
    for p in photos:
        assert p.package in packages and packages[p.package]["registry"] in ("pypi", "debian")
        assert re.fullmatch(r"[0-9a-f]{64}", p.sha256), p.id
        assert set(p.facts) == {"daylight", "vehicle_ahead", "vehicles", "people"}, p.id
    street = [p for p in photos if p.facts["vehicles"] or p.facts["people"]]
    assert len(street) >= 6


def test_answers_that_agree_with_the_facts_contradict_nothing() -> None:
    v = judge(
        photo(daylight=True, vehicle_ahead=True, vehicles=True, people=True),
        NORMAL,
        sa_clip("obstacle", 0.1),
        ["car", "pedestrian"],
        RULES,
    )
    assert all(not c for c in v.contradictions.values())
    assert v.checked == {"st_clip": 2, "sa_clip": 1, "scene_graph": 3}


def test_each_model_is_held_to_the_facts_it_can_contradict() -> None:
    aspects = {**NORMAL, "weather_lighting": "rain", "congestion": "heavy"}
    v = judge(
        photo(daylight=True, vehicle_ahead=False, vehicles=False, people=True),
        aspects,
        sa_clip("wrong_way", 0.7),
        ["truck"],
        RULES,
    )
    assert v.contradictions["st_clip"] == ["no rain or snow falls, says rain", "no vehicles, says heavy traffic"]
    assert v.contradictions["sa_clip"] == ["nothing anomalous, meets the wrong_way rule at 0.70"]
    assert v.contradictions["scene_graph"] == ["no vehicles, finds 1", "people in view, finds none"]
    # A fact left unstated (null) is never held against a model.
    night = judge(
        photo(daylight=None, vehicle_ahead=None, vehicles=None, people=None),
        {**NORMAL, "weather_lighting": "night"},
        sa_clip("obstacle", 0.1),
        ["car"],
        RULES,
    )
    assert all(not c for c in night.contradictions.values())


def test_sa_clip_contradicts_a_normal_photo_when_it_would_raise_an_alert_not_at_a_fixed_score() -> None:
    """The stopped-vehicle rule counts a crash and a stopped car together from 0.4: below 0.5 that still alerts."""
    grouped = judge(photo(daylight=True), NORMAL, sa_clip("obstacle", 0.45, stopped_vehicle=0.42), [], RULES)
    assert grouped.contradictions["sa_clip"] == ["nothing anomalous, meets the stopped_vehicle rule at 0.42"]
    quiet = judge(photo(daylight=True), NORMAL, sa_clip("wrong_way", 0.55), [], RULES)  # the wrong-way rule wants 0.6
    assert quiet.contradictions["sa_clip"] == []


def test_a_png_is_sent_as_a_jpeg_and_a_jpeg_as_it_is() -> None:
    png = io.BytesIO()
    Image.new("RGB", (32, 24), "red").save(png, "PNG")
    jpeg = as_jpeg(png.getvalue())
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    assert as_jpeg(jpeg) == jpeg


def test_a_base_clips_zero_shot_aspects_are_judged_on_each_photo() -> None:
    from evaluation.clip import zero_shot_photos
    from models.checkpoints import SHIPPED_DIR

    coffee = (Path(__file__).parent / "models" / "data" / "coffee.jpg").read_bytes()
    cup = Photo("coffee", "pkg", "a/b.jpg", "0" * 64, "a coffee cup", {"daylight": None, "vehicles": False})
    text = zero_shot_photos([SHIPPED_DIR], {"coffee": coffee, "absent": coffee}, [cup])
    row = next(line for line in text.splitlines() if line.startswith(f"| {SHIPPED_DIR}"))
    assert re.search(r"\| [01] of 1 \| [0-2] / 2 \|$", row), row  # one photo; two facts: the weather, no vehicles
    assert sum(line.lstrip().startswith("coffee ") for line in text.splitlines()) == 1
