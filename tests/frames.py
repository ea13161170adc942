"""Real simulator frames for tests that need a valid dashcam JPEG (synthetic)."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cache

from records.messages import CameraCalibration
from roads.network import load_network
from sim.render import render_jpeg
from sim.scene_spec import SceneSpec
from sim.world import FrameEmission, World, WorldConfig


@cache
def _scenes() -> tuple[SceneSpec, ...]:
    world = World(load_network(), WorldConfig(vehicles=4), seed=11, start=datetime(2026, 11, 3, 8, tzinfo=timezone.utc))
    return tuple(e.spec for e in world.run(20) if isinstance(e, FrameEmission))


def sample_jpeg(n: int = 0) -> bytes:
    """The ``n``-th of a few dozen rendered 224x224 frames (cycled)."""
    scenes = _scenes()
    return render_jpeg(scenes[n % len(scenes)])


def sample_camera(n: int = 0) -> CameraCalibration:
    """The calibration of the camera that took ``sample_jpeg(n)``."""
    scenes = _scenes()
    return scenes[n % len(scenes)].camera.calibration()
