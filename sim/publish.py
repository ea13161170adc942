"""Stream a simulated run into the fleet topics, in delivery order, at a chosen pace.

Messages leave in the order a broker would receive them: a late GPS fix arrives after fixes captured
later. ``speed`` is simulated seconds per wall-clock second (1 = real time, 0 = as fast as possible).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from records.messages import Frame, GpsFix
from sim.scene_spec import SceneSpec
from sim.truth import FrameTruth, GpsTruth, write_jsonl
from sim.world import FrameEmission, GpsEmission, World
from streams.producer import FleetProducer


@dataclass
class Published:
    """What one stream sent, and the truth of the frames sent."""

    gps: int = 0
    frames: list[FrameTruth] = field(default_factory=list)  # the truth of every frame sent
    sim_seconds: float = 0.0
    wall_s: float = 0.0


def gps_message(g: GpsTruth) -> GpsFix:
    """The fix as the vehicle sends it (what the receiver reports, without the truth)."""
    return GpsFix(
        vehicle_id=g.vehicle_id,
        ts=g.ts,
        lat=g.lat,
        lon=g.lon,
        speed_mps=g.speed_mps,
        heading_deg=g.heading_deg,
        accuracy_m=g.accuracy_m,
    )


def as_message(emission: FrameEmission | GpsEmission, render_jpeg: Callable[[SceneSpec], bytes]) -> Frame | GpsFix:
    """The wire message for one emission (frames are rendered here)."""
    if isinstance(emission, GpsEmission):
        return gps_message(emission.truth)
    f = emission.truth
    return Frame(
        vehicle_id=f.vehicle_id,
        frame_id=f.frame_id,
        captured_at=f.captured_at,
        jpeg=render_jpeg(emission.spec),
        camera=f.camera,
    )


def in_delivery_order(emissions: Iterator[FrameEmission | GpsEmission]) -> Iterator[FrameEmission | GpsEmission]:
    """Reorder capture-ordered emissions by delivery time (a fix is never delivered before its capture)."""
    pending: list[tuple[float, int, FrameEmission | GpsEmission]] = []
    for seq, e in enumerate(emissions):
        while pending and pending[0][0] <= e.t:
            yield heapq.heappop(pending)[2]
        heapq.heappush(pending, (e.delivered_t, seq, e))
    while pending:
        yield heapq.heappop(pending)[2]


def publish(
    world: World,
    duration_s: float,
    producer: FleetProducer,
    render_jpeg: Callable[[SceneSpec], bytes],
    speed: float = 1.0,
    on_message: Callable[[Frame | GpsFix, FrameEmission | GpsEmission], Frame | GpsFix | None] = lambda m, e: m,
    progress: Callable[[float], None] = lambda sim_s: None,
) -> Published:
    """Run ``world`` for ``duration_s`` simulated seconds and send everything to the fleet topics.

    ``on_message`` may replace a message (the demo corrupts some on purpose) or drop it (return None).
    """
    out = Published()
    t0 = time.monotonic()
    for emission in in_delivery_order(world.run(duration_s)):
        if speed > 0:
            ahead = emission.delivered_t / speed - (time.monotonic() - t0)
            if ahead > 0:
                producer.flush()
                time.sleep(ahead)
        message = on_message(as_message(emission, render_jpeg), emission)
        if isinstance(message, Frame):
            producer.send_frame(message)
            assert isinstance(emission, FrameEmission)
            out.frames.append(emission.truth)
        elif isinstance(message, GpsFix):
            producer.send_gps(message)
            out.gps += 1
        progress(emission.delivered_t)
    producer.flush()
    out.sim_seconds = duration_s
    out.wall_s = time.monotonic() - t0
    return out


def write_truth(world: World, frames: list[FrameTruth], out: Path) -> None:
    """Write a streamed run's ground truth (frames, incidents, events, road conditions) as JSON lines."""
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "frames.jsonl", frames)
    write_jsonl(out / "incidents.jsonl", world.incidents())
    write_jsonl(out / "events.jsonl", world.events)
    write_jsonl(out / "road_conditions.jsonl", world.road_conditions())
