"""Hard braking, defined once: GPS speed falling at ``HARD_BRAKE_MPS2`` or more between two readings.

The map matcher applies it per GPS fix (counted per segment window); the fusion stage per frame,
from the GPS speeds attached to consecutive frames (it raises ``hard_braking`` alerts). Readings more
than ``MAX_GAP_S`` apart say nothing about acceleration.
"""

from __future__ import annotations

HARD_BRAKE_MPS2 = 4.0  # a common telematics threshold (about 0.4 g)
MAX_GAP_S = 5.0


def acceleration(speed_before_mps: float, speed_after_mps: float, dt_s: float) -> float | None:
    """The change of speed per second between two readings ``dt_s`` apart; None when the gap says nothing."""
    if not 0 < dt_s <= MAX_GAP_S:
        return None
    return (speed_after_mps - speed_before_mps) / dt_s


def is_hard_braking(accel_mps2: float | None) -> bool:
    """Whether an acceleration (from ``acceleration``) is hard braking."""
    return accel_mps2 is not None and accel_mps2 <= -HARD_BRAKE_MPS2
