"""The synthetic world's vocabulary: conditions, object classes, relations and anomaly types.

Labels the models predict come from ``models.vocab`` (the model interface), so ground truth and model
outputs use the same strings. The world also has finer states (weather and lighting apart) that are
mapped onto the model aspects by ``model_aspects``.
"""

from __future__ import annotations

from models.vocab import ANOMALY_TYPES, ASPECTS, OBJECT_CLASSES, PREDICATES

WEATHER: tuple[str, ...] = ("clear", "rain", "fog", "snow")
LIGHTING: tuple[str, ...] = ("day", "dusk", "night")
SURFACES: tuple[str, ...] = ASPECTS["surface"]
SCENE_TYPES: tuple[str, ...] = ASPECTS["scene_type"]
ROAD_WIDTHS: tuple[str, ...] = ASPECTS["road_width"]
ACCESSIBILITY: tuple[str, ...] = ASPECTS["accessibility"]
CONGESTION: tuple[str, ...] = ASPECTS["congestion"]
VEHICLE_CLASSES: tuple[str, ...] = ("car", "truck", "bus")

__all__ = [
    "ACCESSIBILITY",
    "ANOMALY_TYPES",
    "CONGESTION",
    "LIGHTING",
    "OBJECT_CLASSES",
    "PREDICATES",
    "ROAD_WIDTHS",
    "SCENE_TYPES",
    "SURFACES",
    "VEHICLE_CLASSES",
    "WEATHER",
    "model_aspects",
    "weather_lighting",
]


def weather_lighting(weather: str, lighting: str) -> str:
    """The combined ST-CLIP aspect: precipitation or fog wins over lighting, lighting over "clear day"."""
    if weather != "clear":
        return weather
    return {"day": "clear day", "dusk": "dusk", "night": "night"}[lighting]


def model_aspects(
    *, scene_type: str, surface: str, road_width: str, accessibility: str, weather: str, lighting: str, congestion: str
) -> dict[str, str]:
    """Ground-truth labels for every ST-CLIP aspect, keyed and spelled as ``models.vocab.ASPECTS``."""
    aspects = {
        "scene_type": scene_type,
        "surface": surface,
        "road_width": road_width,
        "accessibility": accessibility,
        "weather_lighting": weather_lighting(weather, lighting),
        "congestion": congestion,
    }
    for name, label in aspects.items():
        if label not in ASPECTS[name]:
            raise ValueError(f"{label!r} is not a {name} label (expected one of {ASPECTS[name]})")
    return aspects
