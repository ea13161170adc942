"""What the fleet topics admit: a message the schema accepts, keyed by its vehicle, dated near the
time it reached the broker, and, for a frame, carrying a JPEG that decodes.

A device's clock can be wrong (a receiver without a fix reports 1970, a firmware bug 9999), and a
time taken from a message drives windows, joins and expiry downstream, so implausible times are
stopped here with their reason. Old data can be admitted on purpose (``worker.backfill_from``).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from PIL import Image

from core.errors import InvalidMessage
from core.settings import WorkerSettings
from records.messages import Frame, GpsFix, Parsed, parse

MAX_PIXELS = 4096 * 4096
M = TypeVar("M", Frame, GpsFix)


def check_jpeg(data: bytes) -> tuple[int, int]:
    """Decode the JPEG fully (a truncated or corrupt file fails here, not in Triton); return (w, h)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "JPEG":
                raise InvalidMessage("not_jpeg", f"image format is {img.format}")
            if img.width * img.height > MAX_PIXELS:
                raise InvalidMessage("image_too_large", f"{img.width}x{img.height}")
            img.load()
            return img.size
    except InvalidMessage:
        raise
    except Exception as exc:  # Pillow raises many kinds on hostile files (OSError, SyntaxError, struct.error...)
        raise InvalidMessage("corrupt_jpeg", f"{type(exc).__name__}: {exc}"[:200]) from None


def check_key(msg: Frame | GpsFix, key: bytes | None) -> None:
    """Fleet messages must be keyed by vehicle_id: co-partitioning of frames and GPS depends on it."""
    if key is None or key.decode("utf-8", "replace") != msg.vehicle_id:
        raise InvalidMessage("key_mismatch", f"message key {key!r} is not its vehicle_id {msg.vehicle_id!r}")


@dataclass(frozen=True)
class Admission:
    """The checks a frame or fix passes before any stage uses it."""

    max_ahead_s: float = 300.0
    max_age_s: float = 7 * 86400.0
    backfill_from: datetime | None = None

    @classmethod
    def of(cls, worker: WorkerSettings) -> "Admission":
        return cls(worker.max_time_ahead_s, worker.max_time_age_s, worker.backfill_from)

    def check_time(self, at: datetime, broker_ts: float) -> None:
        """Raise InvalidMessage unless ``at`` is plausible for a message that reached the broker at ``broker_ts``."""
        ahead = at.timestamp() - broker_ts
        if ahead > self.max_ahead_s:
            raise InvalidMessage(
                "time_in_future",
                f"dated {at.isoformat()}, {ahead:.0f} s after it reached the broker"
                f" (at most {self.max_ahead_s:g} s: FLEETSCOPE_WORKER__MAX_TIME_AHEAD_S)",
            )
        if -ahead > self.max_age_s and (self.backfill_from is None or at < self.backfill_from):
            since = f"; backfill admits from {self.backfill_from.isoformat()}" if self.backfill_from else ""
            raise InvalidMessage(
                "time_too_old",
                f"dated {at.isoformat()}, {-ahead:.0f} s before it reached the broker"
                f" (at most {self.max_age_s:g} s: FLEETSCOPE_WORKER__MAX_TIME_AGE_S{since})",
            )

    def admit(self, model: type[M], raw: bytes | None, key: bytes | None, broker_ts: float | None) -> Parsed[M]:
        """The message (and its unknown fields) if the topic admits it; else raise InvalidMessage with the reason."""
        parsed = parse(model, raw)
        msg = parsed.message
        check_key(msg, key)
        reached = broker_ts if broker_ts is not None and broker_ts > 0 else time.time()
        self.check_time(msg.captured_at if isinstance(msg, Frame) else msg.ts, reached)
        if isinstance(msg, Frame):
            check_jpeg(msg.jpeg)
        return parsed
