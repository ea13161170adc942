"""The dashcam renderer: deterministic frames showing the spec's conditions, road and objects where the camera says."""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest
from PIL import Image

from sim.camera import Camera
from sim.contact_sheet import contact_sheet
from sim.render import encode_jpeg, render, render_jpeg
from sim.scene_spec import RoadView, SceneObject, SceneSpec

CAMERA = Camera(width=224, height=224, fx=150.0, fy=150.0, cx=112.0, cy=112.0, mounting_height_m=1.5, pitch_deg=3.0)
SIZES = {"car": (4.5, 1.8, 1.5), "truck": (8.0, 2.5, 3.5), "pedestrian": (0.5, 0.6, 1.75), "obstacle": (0.8, 0.8, 0.6)}


def thing(cls: str, x: float, y: float, heading: float = 0.0, lights: str = "off", color=(200, 30, 30)) -> SceneObject:
    """A scene object of ``cls`` with its box filled in as the world does."""
    length, width, height = SIZES[cls]
    box = CAMERA.box(x, y, heading, length, width, height)
    return SceneObject(1, cls, x, y, heading, length, width, height, 0.0, color, lights, 0, box)


def scene(
    *objects: SceneObject,
    weather: str = "clear",
    lighting: str = "day",
    surface: str = "dry",
    scene_type: str = "arterial",
    lanes: tuple[int, int] = (2, 1),
    seed: int = 7,
    clutter: float = 0.0,
    ego_lane: int | None = None,
) -> SceneSpec:
    """A hand-made spec: ``lanes`` = (forward, opposite), the ego car by default in the leftmost forward lane."""
    forward, opposite = lanes
    ego = opposite if ego_lane is None else ego_lane
    road = RoadView(forward, opposite, ego, 3.5, scene_type != "highway", scene_type)
    return SceneSpec(CAMERA, road, weather, lighting, surface, tuple(objects), seed, 90, clutter)


def luminance(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def mean_over_seeds(seeds: range = range(3), rows: slice = slice(None), **kw) -> float:
    return float(np.mean([luminance(render(scene(seed=s, **kw)))[rows].mean() for s in seeds]))


def test_frame_is_rgb_uint8_of_the_camera_size() -> None:
    cam = dataclasses.replace(CAMERA, width=160, height=120, cx=80.0, cy=60.0)
    img = render(dataclasses.replace(scene(), camera=cam))
    assert img.shape == (120, 160, 3) and img.dtype == np.uint8


def test_same_spec_gives_same_jpeg_bytes_and_another_seed_another_image() -> None:
    spec = scene(thing("car", 12, 0), weather="rain", surface="wet", lighting="dusk", clutter=0.8)
    jpeg = render_jpeg(spec)
    assert jpeg[:2] == b"\xff\xd8" and jpeg == render_jpeg(spec)
    assert not np.array_equal(render(spec), render(dataclasses.replace(spec, seed=spec.seed + 1)))


def test_jpeg_has_the_spec_quality_and_no_metadata() -> None:
    img = render(scene())
    small, large = encode_jpeg(img, 40), encode_jpeg(img, 95)
    assert len(small) < len(large)
    assert b"Exif" not in large and encode_jpeg(img, 95) == large
    assert Image.open(io.BytesIO(large)).size == (224, 224)


def test_a_car_shows_inside_its_camera_box_and_nowhere_far_from_it() -> None:
    red = thing("car", 12, 0, color=(220, 20, 20))
    with_car, without = render(scene(red)).astype(float), render(scene()).astype(float)
    u1, v1, u2, v2 = (int(round(c)) for c in red.box)
    inside = (slice(v1 + 1, v2 - 1), slice(u1 + 1, u2 - 1))
    assert np.abs(with_car[inside] - without[inside]).mean() > 40
    assert (with_car[inside][..., 0] - with_car[inside][..., 1]).mean() > 30  # red body (glass and tyres are not)
    far = np.ones(with_car.shape[:2], bool)
    far[max(0, v1 - 25) : v2 + 25, max(0, u1 - 25) : u2 + 25] = False
    assert np.abs(with_car - without)[far].mean() < 1.0


def test_nearer_objects_hide_farther_ones() -> None:
    far_blue = thing("truck", 25, 0, color=(20, 40, 220))
    near_red = thing("car", 10, 0, color=(220, 20, 20))
    img = render(scene(far_blue, near_red)).astype(float)
    u1, v1, u2, v2 = (int(round(c)) for c in near_red.box)
    middle = img[(v1 + v2) // 2 - 3 : (v1 + v2) // 2 + 3, (u1 + u2) // 2 - 5 : (u1 + u2) // 2 + 5]
    assert middle[..., 0].mean() > middle[..., 2].mean()


def test_hazard_lights_add_amber_at_both_sides_of_the_car() -> None:
    off, hazard = thing("car", 12, 0, color=(90, 90, 95)), thing("car", 12, 0, lights="hazard", color=(90, 90, 95))
    a, b = render(scene(off)).astype(float), render(scene(hazard)).astype(float)
    u1, v1, u2, v2 = (int(round(c)) for c in off.box)
    gain = b - a
    amber = gain[..., 0] + gain[..., 1] - 2 * gain[..., 2]  # red and green up, blue not
    width = u2 - u1
    left = amber[v1:v2, u1 - 3 : u1 + width // 3].max()
    right = amber[v1:v2, u2 - width // 3 : u2 + 3].max()
    assert left > 80 and right > 80


def test_oncoming_headlights_light_up_at_the_car_at_night() -> None:
    lit = thing("car", 20, 3.5, heading=math.pi, lights="head", color=(60, 60, 60))
    dark = dataclasses.replace(lit, lights="off")
    gain = luminance(render(scene(lit, lighting="night"))) - luminance(render(scene(dark, lighting="night")))
    u1, v1, u2, v2 = lit.box
    v, u = np.unravel_index(np.argmax(gain), gain.shape)
    assert gain.max() > 100
    assert u1 - 4 <= u <= u2 + 4 and v1 - 4 <= v <= v2 + 4


def test_night_is_darker_than_dusk_and_dusk_darker_than_day() -> None:
    day, dusk, night = (mean_over_seeds(range(4), lighting=light) for light in ("day", "dusk", "night"))
    assert night < 0.7 * dusk and dusk < 0.9 * day


def test_fog_lowers_contrast_in_the_upper_ground() -> None:
    upper_ground = slice(106, 130)  # just below the horizon (row 104): 15 to 100 metres ahead

    def spread_along_rows(weather: str) -> float:
        specs = [scene(seed=s, weather=weather, scene_type="urban street", clutter=1.0) for s in range(3)]
        return float(np.mean([luminance(render(spec))[upper_ground].std(axis=1).mean() for spec in specs]))

    assert spread_along_rows("fog") < 0.6 * spread_along_rows("clear")


def test_snow_covered_road_is_brighter_than_dry_and_wet_darker() -> None:
    road = (slice(170, 224), slice(80, 144))  # the ego lane and its neighbours near the car
    snow, dry, wet = (mean_over_seeds(rows=road, surface=s) for s in ("snow", "dry", "wet"))
    assert snow > dry + 50
    assert wet < dry


def test_lane_boundaries_are_marked_where_the_camera_projects_them() -> None:
    spec = scene(lanes=(3, 1), ego_lane=2, scene_type="highway")  # in the middle of three forward lanes
    img, road = render(spec).astype(float), spec.road
    xs = np.linspace(6, 26, 120)
    lum = luminance(img)

    def along(y: float) -> np.ndarray:
        """The pixel colours along the ground line at lateral ``y``, the brightest within a pixel of it."""
        u, v, _ = CAMERA.project(xs, np.full_like(xs, y), np.zeros_like(xs))
        seen = (u >= 1) & (u < 223) & (v < 224)
        assert seen.sum() > 20
        rows, cols = v[seen].astype(int), u[seen].astype(int)
        best = np.argmax([lum[rows, cols + d] for d in (-1, 0, 1)], axis=0) - 1
        return img[rows, cols + best]

    centres = np.concatenate([along(road.lane_center_y(k)) for k in range(road.lanes)])
    asphalt = np.median(luminance(centres))
    for k in (2, 3):  # the white dashed lines left and right of the ego lane
        line = along(road.left_edge_y - k * road.lane_width_m)
        assert np.percentile(luminance(line), 90) > asphalt + 25, k  # 3 m dashes every 12 m, some worn
    centre = along(road.left_edge_y - road.lanes_opposite * road.lane_width_m + 0.12)
    assert np.percentile(centre[:, 0] - centre[:, 2], 75) > 40  # yellow between the directions (Finnish style)


def test_scene_types_differ_in_what_stands_beside_the_road() -> None:
    sky_rows = slice(0, 60)

    def blue_sky_share(scene_type: str) -> float:
        shares = []
        for s in range(3):
            top = render(scene(seed=s, scene_type=scene_type))[sky_rows].astype(float)
            shares.append(((top[..., 2] > top[..., 0] + 30) & (top[..., 2] > 100)).mean())
        return float(np.mean(shares))

    highway = blue_sky_share("highway")
    assert blue_sky_share("tunnel") < 0.05 < 0.6 < highway  # a ceiling instead of the sky
    assert blue_sky_share("urban street") < highway - 0.2  # facades close on both sides


@pytest.mark.parametrize("weather", ["rain", "snow"])
def test_falling_rain_and_snow_change_the_sky(weather: str) -> None:
    clear, wet = render(scene(lighting="dusk")), render(scene(weather=weather, lighting="dusk"))
    assert np.abs(clear[:60].astype(float) - wet[:60]).mean() > 10


def test_every_class_and_condition_renders() -> None:
    objects = [
        thing("car", 10, 0, heading=0.9, lights="brake"),
        thing("truck", 30, 3.5, heading=math.pi, lights="head"),
        thing("pedestrian", 8, -5.0, heading=math.pi / 2),
        thing("obstacle", 5, 0.2),
        thing("car", 1.0, 0.0),  # partly behind the camera
    ]
    extra = [
        SceneObject(2, "cyclist", 9, -4.0, 0.0, 1.8, 0.6, 1.8, 5.0, (40, 160, 60), "off", 1),
        SceneObject(3, "traffic light", 20, -6.0, math.pi, 0.4, 0.4, 4.0, 0.0, (30, 30, 30), "green", 0),
        SceneObject(4, "bus", 40, 0.0, 0.0, 12.0, 2.55, 3.1, 8.0, (30, 80, 170), "hazard", 0),
    ]
    for i, (weather, lighting, surface, scene_type) in enumerate(
        zip(
            ["clear", "rain", "fog", "snow", "clear"],
            ["day", "dusk", "night", "day", "night"],
            ["dry", "wet", "damaged", "snow", "wet"],
            ["urban street", "residential", "arterial", "highway", "tunnel"],
            strict=True,
        )
    ):
        spec = scene(*objects, *extra, weather=weather, lighting=lighting, surface=surface, scene_type=scene_type)
        img = render(dataclasses.replace(spec, seed=i, clutter=1.0))
        assert img.shape == (224, 224, 3) and 5 < img.mean() < 250


def test_contact_sheet_lays_out_tiles_with_captions() -> None:
    specs = [scene(thing("car", 12, 0)), scene(weather="fog"), scene(lighting="night")]
    sheet = contact_sheet([(render(s), s, [s.weather, s.lighting]) for s in specs], columns=2)
    assert sheet.width > 2 * 2 * 224 and sheet.height > 2 * 2 * 224
    box = specs[0].objects[0].box
    assert box is not None
    # The car's box outline is drawn in the car colour (cyan) on the first tile, upscaled 2x.
    u1, v1 = int(box[0] * 2) + 6, int(box[1] * 2) + 6
    pixels = np.asarray(sheet)[v1 : v1 + 3, u1 : u1 + 40]
    assert (pixels == (0, 200, 255)).all(axis=-1).any()
