"""``fleetscope bench render``: frames per second of the dashcam renderer plus JPEG encoding, on one core."""

from __future__ import annotations

import json
import os
import statistics
import time
from datetime import datetime

import click

from sim.cli import DEFAULT_START

TARGET_FPS = 100.0


@click.command("render")
@click.option("--frames", default=400, show_default=True, help="frames to time (after 20 warm-up frames)")
@click.option("--size", default=224, show_default=True, help="image width and height, pixels")
@click.option("--seed", default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of text")
def bench_render(frames: int, size: int, seed: int, as_json: bool) -> None:
    """Render + JPEG-encode simulated scenes on one core; prints frames/s against the 100 frames/s target.

    Scenes come from a simulated morning rush (12 vehicles, incidents included); the simulation itself
    is not timed. Also prints the world-simulation cost per frame, which the export adds on top.
    """
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    from roads.network import load_network
    from sim.render import encode_jpeg, render
    from sim.world import FrameEmission, World, WorldConfig

    world = World(
        load_network(), WorldConfig(vehicles=12, image_size=size), seed, datetime.fromisoformat(DEFAULT_START)
    )
    t0 = time.perf_counter()
    specs = []
    for e in world.run(3600):
        if isinstance(e, FrameEmission):
            specs.append(e.spec)
            if len(specs) == frames + 20:
                break
    sim_ms = (time.perf_counter() - t0) / len(specs) * 1000
    for spec in specs[:20]:
        encode_jpeg(render(spec), spec.jpeg_quality)
    render_s, encode_s, sizes = [], [], []
    for spec in specs[20:]:
        a = time.perf_counter()
        image = render(spec)
        b = time.perf_counter()
        data = encode_jpeg(image, spec.jpeg_quality)
        c = time.perf_counter()
        render_s.append(b - a)
        encode_s.append(c - b)
        sizes.append(len(data))
    total = sum(render_s) + sum(encode_s)
    result = {
        "frames": len(render_s),
        "size": size,
        "fps_render_and_encode": round(len(render_s) / total, 1),
        "target_fps": TARGET_FPS,
        "ratio_to_target": round(len(render_s) / total / TARGET_FPS, 2),
        "render_ms_mean": round(statistics.fmean(render_s) * 1000, 2),
        "render_ms_p95": round(sorted(render_s)[int(0.95 * len(render_s))] * 1000, 2),
        "encode_ms_mean": round(statistics.fmean(encode_s) * 1000, 2),
        "jpeg_kb_mean": round(statistics.fmean(sizes) / 1024, 1),
        "simulation_ms_per_frame": round(sim_ms, 2),
        "objects_per_frame": round(statistics.fmean(len(s.objects) for s in specs[20:]), 1),
    }
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"render + JPEG encode, {size}x{size}, one core, {result['frames']} simulated frames")
    click.echo(f"  throughput        {result['fps_render_and_encode']} frames/s (target {TARGET_FPS:g}; "
               f"ratio {result['ratio_to_target']})")  # fmt: skip
    click.echo(f"  render            {result['render_ms_mean']} ms mean, {result['render_ms_p95']} ms p95")
    click.echo(f"  JPEG encode       {result['encode_ms_mean']} ms mean, {result['jpeg_kb_mean']} KiB mean")
    click.echo(f"  simulation        {result['simulation_ms_per_frame']} ms per frame (not in the throughput)")
    click.echo(f"  objects per frame {result['objects_per_frame']}")
