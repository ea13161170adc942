"""Label vocabularies and tensor layouts shared by the models, Triton and the streaming worker.

Pure Python (no torch) so the worker can name model outputs without importing the models.
Changing an order here changes the model interface: bump ``INTERFACE_VERSION``.
"""

from __future__ import annotations

INTERFACE_VERSION = 3

# ST-CLIP aspects, in output order; each is one Triton output named ASPECT_<NAME.upper()>.
ASPECTS: dict[str, tuple[str, ...]] = {
    "scene_type": ("urban street", "residential", "arterial", "highway", "tunnel"),
    "surface": ("dry", "wet", "snow", "damaged"),
    "road_width": ("narrow", "medium", "wide"),
    "accessibility": ("open", "restricted", "blocked"),
    "weather_lighting": ("clear day", "rain", "fog", "snow", "dusk", "night"),
    "congestion": ("free flow", "moderate", "heavy", "standstill"),
}

# How each aspect's classes are worded in prompts (ST-CLIP's learned prompts end with these words, the
# zero-shot baseline's prompts are these words in a sentence) and in training captions.
ASPECT_PHRASES: dict[str, dict[str, str]] = {
    "scene_type": {
        "urban street": "an urban street",
        "residential": "a residential street",
        "arterial": "an arterial road",
        "highway": "a highway",
        "tunnel": "a tunnel",
    },
    "surface": {"dry": "a dry road", "wet": "a wet road", "snow": "a snowy road", "damaged": "a damaged road"},
    "road_width": {"narrow": "a narrow road", "medium": "a road of medium width", "wide": "a wide road"},
    "accessibility": {"open": "an open road", "restricted": "a partly blocked road", "blocked": "a blocked road"},
    "weather_lighting": {
        "clear day": "a clear day",
        "rain": "rain",
        "fog": "fog",
        "snow": "snowfall",
        "dusk": "dusk",
        "night": "night",
    },
    "congestion": {
        "free flow": "free flowing traffic",
        "moderate": "moderate traffic",
        "heavy": "heavy traffic",
        "standstill": "traffic at a standstill",
    },
}

# Scene-graph object classes and predicates.
OBJECT_CLASSES: tuple[str, ...] = (
    "car",
    "truck",
    "bus",
    "cyclist",
    "pedestrian",
    "traffic light",
    "obstacle",
)
VEHICLE_CLASSES: tuple[str, ...] = OBJECT_CLASSES[:3]  # the classes the scene graph's facing head is trained on
PREDICATES: tuple[str, ...] = (
    "in front of",
    "left of",
    "right of",
    "following",
    "crossing",
    "passing",
    "collides with",
)

# SA-CLIP relation prompts: normal ones first, then one anomalous prompt per anomaly type. They are
# worded in the grammar of SA-CLIP's training captions (training/captions.py), so that a type
# never seen in training is a new combination of known words.
NORMAL_PROMPTS: tuple[str, ...] = (
    "the road ahead is clear",
    "a car is moving away on our side of the road",
    "a car is coming towards us on the other side of the road",
    "a pedestrian is beside the road",
    "a car is standing beside the road",
)
ANOMALY_PROMPTS: dict[str, str] = {
    "collision": "a car collides with a car",
    "stopped_vehicle": "a car with hazard lights is standing on our side of the road",
    "pedestrian_in_lane": "a pedestrian is on our side of the road",
    "wrong_way": "a car is coming towards us on our side of the road",
    "obstacle": "an obstacle is on our side of the road",
}
RELATION_PROMPTS: tuple[str, ...] = NORMAL_PROMPTS + tuple(ANOMALY_PROMPTS.values())
ANOMALY_TYPES: tuple[str, ...] = tuple(ANOMALY_PROMPTS)
# Anomaly types no model trains on, scored zero-shot; their prompts never appear in training text.
HELD_OUT_TYPES: tuple[str, ...] = ("pedestrian_in_lane", "wrong_way")

# Scene-graph output sizes (fixed so that Triton can batch).
NUM_QUERIES = 16
NUM_TRIPLETS = 32

# Spatio-temporal context vector sent with every frame to st_clip (float32, this layout).
ST_CONTEXT_FIELDS: tuple[str, ...] = (
    "has_context",  # 1 when a GPS fix was attached, 0 = explicit "no context"
    "speed_norm",  # vehicle speed / 30 m/s
    "heading_sin",
    "heading_cos",
    "accuracy_norm",  # GPS accuracy / 50 m
    "hour_sin",  # local time of day
    "hour_cos",
    "weekday_norm",  # 0..1
    "fix_age_norm",  # |frame time - fix time| / tolerance
    "road_class_norm",  # static attributes of the map-matched segment (0 when off the network)
    "lanes_norm",
    "speed_limit_norm",
    "segment_length_norm",
    "out_degree_norm",
    "window_vehicles_norm",  # the segment's current traffic window (0 before it has one)
    "window_median_speed_norm",
)
ST_CONTEXT_DIM = len(ST_CONTEXT_FIELDS)
