"""Where a detected object stands: its box's bottom centre projected onto the ground plane.

Ego frame: x metres forward, y metres left, origin on the ground below the camera, which sits at
``mounting_height_m`` and is pitched down by ``pitch_deg`` (``records.messages.CameraCalibration``).
"""

from __future__ import annotations

import math

import numpy as np

from records.messages import CameraCalibration

MAX_RANGE_M = 150.0  # beyond this a pixel row near the horizon says nothing useful about distance
# Half the depth of each class seen end-on: a box touches the road at the object's near face.
HALF_DEPTH_M = {"car": 2.25, "truck": 4.0, "bus": 6.0, "cyclist": 0.9, "pedestrian": 0.25}


def ground_points(camera: CameraCalibration, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Ground-plane points [N,2] (x, y) seen at pixels (u, v); NaN at or above the horizon or beyond MAX_RANGE_M."""
    t = math.radians(camera.pitch_deg)
    a = (np.asarray(v, dtype=np.float64) - camera.cy) / camera.fy
    b = (np.asarray(u, dtype=np.float64) - camera.cx) / camera.fx
    dx = math.cos(t) - a * math.sin(t)
    dz = -math.sin(t) - a * math.cos(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(dz < -1e-9, camera.mounting_height_m / -dz, np.nan)
    xy = np.stack([s * dx, -s * b], axis=-1)
    xy[np.hypot(xy[:, 0], xy[:, 1]) > MAX_RANGE_M] = np.nan
    return xy


def box_ground_points(camera: CameraCalibration, boxes: np.ndarray) -> np.ndarray:
    """Ground points [N,2] of boxes [N,4] (x1, y1, x2, y2 normalised to 0..1): where each box touches the road."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    u = (boxes[:, 0] + boxes[:, 2]) / 2 * camera.width
    v = boxes[:, 3] * camera.height
    return ground_points(camera, u, v)


def object_positions(camera: CameraCalibration, boxes: np.ndarray, labels: list[str]) -> np.ndarray:
    """Ground positions [N,2] of the objects' centres: the box's ground contact moved back by half the
    class's depth along the line of sight. NaN where the contact point is off the ground plane."""
    if len(boxes) != len(labels):
        raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels")
    contact = box_ground_points(camera, boxes)
    ranges = np.hypot(contact[:, 0], contact[:, 1])
    depth = np.array([HALF_DEPTH_M.get(label, 0.0) for label in labels])
    with np.errstate(invalid="ignore", divide="ignore"):
        return contact * ((ranges + depth) / ranges)[:, None]
