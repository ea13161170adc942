"""``fleetscope simulate``: stream the synthetic fleet into Kafka, export a dataset, or draw a contact sheet."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click
from tqdm import tqdm

from models.vocab import HELD_OUT_TYPES
from sim.vocab import ANOMALY_TYPES

if TYPE_CHECKING:
    from roads.network import RoadNetwork
    from sim.world import WorldConfig

# A Monday morning rush hour in Helsinki (08:00 local).
DEFAULT_START = "2026-11-02T06:00:00+00:00"


def start_time(value: str) -> datetime:
    """An ISO 8601 time (UTC when no zone is given), or a usage error saying what is expected."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as {DEFAULT_START}") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _holdout(value: str) -> tuple[str, ...]:
    types = tuple(t for t in value.split(",") if t)
    unknown = [t for t in types if t not in ANOMALY_TYPES]
    if unknown:
        raise click.BadParameter(f"unknown anomaly type(s) {unknown}; known: {', '.join(ANOMALY_TYPES)}")
    return types


@click.command()
@click.option("--to-kafka", is_flag=True, help="stream frames and GPS into the fleet topics (FLEETSCOPE_KAFKA__*)")
@click.option("--export", "export_dir", type=click.Path(file_okay=False, path_type=Path), help="write a dataset here")
@click.option("--contact-sheet", type=click.Path(dir_okay=False, path_type=Path), help="write a labelled sample sheet")
@click.option("--frames", default=2000, show_default=True, help="--export: frames in the dataset")
@click.option("--duration", default=600.0, show_default=True, help="--to-kafka: simulated seconds to stream")
@click.option("--vehicles", type=int, help="fleet size  [default: 20 streaming, 8 per episode exporting]")
@click.option("--seed", default=7, show_default=True, help="everything is reproducible from this seed")
@click.option("--speed", default=1.0, show_default=True, help="--to-kafka: simulated s per wall s; 0 = unpaced")
@click.option("--start", default=DEFAULT_START, show_default=True, help="--to-kafka: simulated start time (ISO 8601)")
@click.option(
    "--network", type=click.Path(exists=True, dir_okay=False), help=".osm.pbf road network (default: Helsinki)"
)
@click.option("--gps-noise", default=5.0, show_default=True, help="GPS noise, metres (std. dev. per axis)")
@click.option("--frame-interval", default=2.0, show_default=True, help="seconds between a vehicle's frames")
@click.option("--incident-rate", type=float, help="incidents per vehicle-hour  [default: 30 streaming, 150 exporting]")
@click.option("--holdout", default=",".join(HELD_OUT_TYPES), show_default=True, help="--export: zero-shot types")
@click.option("--truth", type=click.Path(file_okay=False, path_type=Path), help="--to-kafka: write ground truth here")
def simulate(
    to_kafka: bool,
    export_dir: Path | None,
    contact_sheet: Path | None,
    frames: int,
    duration: float,
    vehicles: int | None,
    seed: int,
    speed: float,
    start: str,
    network: str | None,
    gps_noise: float,
    frame_interval: float,
    incident_rate: float | None,
    holdout: str,
    truth: Path | None,
) -> None:
    """Simulate a fleet on a real OpenStreetMap road network (synthetic frames and GPS with ground truth).

    Pick one output: --to-kafka, --export DIR or --contact-sheet FILE.
    """
    if sum([to_kafka, export_dir is not None, contact_sheet is not None]) != 1:
        raise click.UsageError("choose exactly one of --to-kafka, --export DIR, --contact-sheet FILE")
    if frames <= 0 or duration <= 0 or frame_interval <= 0 or gps_noise < 0 or (vehicles is not None and vehicles <= 0):
        raise click.UsageError("--frames, --duration, --vehicles and --frame-interval must be positive")
    from roads.network import load_network
    from sim.fleet import GpsConfig
    from sim.render import render_jpeg
    from sim.world import WorldConfig

    held_out = _holdout(holdout)
    start_at = start_time(start)
    net = load_network(network)
    gps = GpsConfig(noise_m=gps_noise)
    if export_dir is not None:
        from sim.export import ExportConfig, export

        world = WorldConfig(
            vehicles=vehicles or 8,
            frame_interval_s=frame_interval,
            incidents_per_vehicle_hour=150.0 if incident_rate is None else incident_rate,
            gps=gps,
        )
        t0 = time.monotonic()
        with tqdm(total=frames, unit="frame", desc="export", file=sys.stderr) as bar:
            manifest = export(
                net, export_dir, ExportConfig(frames=frames, seed=seed, holdout=held_out, world=world), render_jpeg,
                progress=bar.update,
            )  # fmt: skip
        click.echo(
            json.dumps({**manifest["counts"], "dir": str(export_dir), "wall_s": round(time.monotonic() - t0, 1)})
        )
    elif contact_sheet is not None:
        from sim.samples import write_contact_sheet

        write_contact_sheet(net, contact_sheet, seed)
        click.echo(f"wrote {contact_sheet}")
    else:
        config = WorldConfig(
            vehicles=vehicles or 20,
            frame_interval_s=frame_interval,
            incidents_per_vehicle_hour=30.0 if incident_rate is None else incident_rate,
            gps=gps,
        )
        _to_kafka(net, config, duration, seed, speed, start_at, truth)


def _to_kafka(net: RoadNetwork, config: WorldConfig, duration: float, seed: int, speed: float, start: datetime,
              truth: Path | None) -> None:  # fmt: skip
    from core.cli_support import settings_or_exit
    from sim.publish import publish, write_truth
    from sim.render import render_jpeg
    from sim.world import World
    from streams.producer import FleetProducer

    settings = settings_or_exit()
    w = settings.worker
    if (datetime.now(timezone.utc) - start).total_seconds() > w.max_time_age_s and (
        w.backfill_from is None or start < w.backfill_from
    ):
        click.echo(
            f"note: the simulated start {start.isoformat()} is older than a worker admits by default"
            f" ({w.max_time_age_s / 86400:g} days): it dead-letters these frames and fixes as time_too_old unless it"
            f" runs with FLEETSCOPE_WORKER__BACKFILL_FROM={start.isoformat()} (or pass a recent --start)",
            err=True,
        )
    world = World(net, config, seed, start)
    with FleetProducer(settings) as producer, tqdm(total=duration, unit="sim s", file=sys.stderr) as bar:
        done = publish(world, duration, producer, render_jpeg, speed, progress=lambda s: bar.update(s - bar.n))
    if truth is not None:
        write_truth(world, done.frames, truth)
    click.echo(
        json.dumps(
            {
                "frames": len(done.frames),
                "gps": done.gps,
                "incidents": len(world.traffic.incidents),
                "sim_s": duration,
                "wall_s": round(done.wall_s, 1),
                "kafka": settings.kafka.servers,
                "truth": str(truth) if truth else None,
            }
        )
    )
