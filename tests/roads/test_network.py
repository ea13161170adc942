"""The road network's own labels agree with the model vocabulary (roads/ does not import models/)."""

from __future__ import annotations

from models.vocab import ASPECTS
from roads.network import ROAD_WIDTHS, load_network


def test_road_width_labels_are_the_model_vocabulary() -> None:
    assert ROAD_WIDTHS == ASPECTS["road_width"]


def test_every_segment_labels_its_scene_and_width_in_the_model_vocabulary() -> None:
    net = load_network()
    assert {s.scene_type for s in net.segments} <= set(ASPECTS["scene_type"])
    assert {s.road_width for s in net.segments} <= set(ASPECTS["road_width"])


def test_projection_round_trips_to_within_a_millimetre() -> None:
    projection = load_network().projection
    lat, lon = projection.lat0 + 0.01, projection.lon0 - 0.02
    x, y = projection.to_xy(lat, lon)
    back = projection.to_latlon(x, y)
    assert abs(back[0] - lat) < 1e-8 and abs(back[1] - lon) < 1e-8
