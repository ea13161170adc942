"""``fleetscope bench gps``: GPS fixes per second through the real broker and one Faust worker.

A simulated fleet's fixes are encoded up front and produced to ``fleet.gps`` of a GPS-only embedded
stack (broker and PostgreSQL, no Triton) once its one worker is ready; producing is about five times
faster than the worker consumes, so the worker drains a backlog: map matching, the
repartition by segment, the segment-window table and ``segment_stats``. Rates come from the worker's
own counters, polled every 0.25 s. Side by side in the same run, the map matcher alone (same fixes, in
process, no Kafka) gives the ratio that shows what the broker and Faust cost.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import click
from prometheus_client.parser import text_string_to_metric_families

TARGET_FIXES_PER_S = 5000.0


def _counters(port: int) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in ("fleetscope_messages_in_total", "fleetscope_messages_out_total"):
                out[(s.name, s.labels["topic"])] = s.value
            elif s.name == "fleetscope_dead_letters_total":
                out[(s.name, s.labels["reason"])] = out.get((s.name, s.labels["reason"]), 0) + s.value
    return out


def _dead_letters(counters: dict[tuple[str, str], float]) -> dict[str, int]:
    return {reason: int(n) for (name, reason), n in counters.items() if name == "fleetscope_dead_letters_total" and n}


@click.command("gps")
@click.option("--vehicles", default=200, show_default=True, help="vehicles in the simulated fleet")
@click.option("--duration", default=300, show_default=True, help="simulated seconds of GPS (1 fix/s per vehicle)")
@click.option("--seed", default=7, show_default=True)
@click.option("--timeout", default=600.0, show_default=True, help="bound on waiting for the worker (s)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of text")
def bench_gps(vehicles: int, duration: int, seed: int, timeout: float, as_json: bool) -> None:
    """GPS fixes/s per worker through the broker and Faust, against the 5,000 fixes/s target.

    Starts its own broker and PostgreSQL on free ports under var/bench-gps and stops them at the end.
    """
    from core.settings import REPO_ROOT, load_settings
    from infra.process import free_ports
    from infra.stack import Stack
    from infra.worker import WorkerProcess
    from roads.network import load_network
    from sim.cli import DEFAULT_START
    from sim.publish import gps_message, in_delivery_order
    from sim.world import GpsEmission, World, WorldConfig
    from streams import topics
    from streams.context.vehicle_track import VehicleTracks
    from streams.producer import FleetProducer

    network = load_network()
    click.echo(f"simulating {vehicles} vehicles for {duration} s (GPS only) ...", err=True)
    world = World(network, WorldConfig(vehicles=vehicles, frames=False), seed, datetime.fromisoformat(DEFAULT_START))
    fixes = [gps_message(e.truth) for e in in_delivery_order(world.run(duration)) if isinstance(e, GpsEmission)]
    encoded = [(f.vehicle_id, f.encode()) for f in fixes]

    tracks = VehicleTracks(network)
    t0 = time.perf_counter()
    tracks.push_all(fixes)
    alone = len(fixes) / (time.perf_counter() - t0)

    kafka, pg, metrics_port = free_ports(3)
    settings = load_settings(
        kafka={"embedded_port": kafka},
        postgres={"embedded_port": pg},
        # The simulated morning is a fixed date: admit it, or a worker dead-letters it once it is a week old.
        worker={"metrics_port": metrics_port, "embedded": False, "backfill_from": DEFAULT_START},
        stack={"run_dir": REPO_ROOT / "var" / "bench-gps"},
    )
    gps, observations = settings.topic(topics.GPS), settings.topic(topics.SEGMENT_OBSERVATIONS)
    with Stack(settings, with_triton=False):
        worker = WorkerProcess(settings)
        produce_s: list[float] = []

        def produce() -> None:
            p0 = time.perf_counter()
            with FleetProducer(settings) as producer:
                for key, value in encoded:
                    producer.send_raw(gps, key, value)
                producer.flush()
            produce_s.append(time.perf_counter() - p0)

        try:
            click.echo("starting one worker ...", err=True)
            worker.start()
            # Produced once the worker is ready and timed from then: producing is about five times faster
            # than the worker consumes, so the worker drains a backlog from the first seconds on.
            click.echo(f"producing {len(encoded)} fixes to {gps}; the worker drains them ...", err=True)
            producing = threading.Thread(target=produce, name="produce", daemon=True)
            producing.start()
            first = gps_done = windows_done = None
            consumed_before = 0.0
            deadline = time.monotonic() + timeout
            while windows_done is None:
                if time.monotonic() > deadline:
                    raise click.ClickException(
                        f"worker did not finish within {timeout:g}s; see {worker.process.log_path}"
                    )
                c = _counters(metrics_port)
                now = time.perf_counter()
                if sum(_dead_letters(c).values()) > len(encoded) // 100:
                    raise click.ClickException(
                        f"the worker dead-lettered fixes ({_dead_letters(c)}); see {worker.process.log_path}"
                    )
                n_in = c.get(("fleetscope_messages_in_total", gps), 0)
                # Timed from the first scrape that sees fixes consumed, counting only those consumed after it.
                if first is None and n_in > 0:
                    first, consumed_before = now, n_in
                if gps_done is None and n_in >= len(encoded):
                    gps_done = now
                sent = c.get(("fleetscope_messages_out_total", observations), 0)
                if gps_done and c.get(("fleetscope_messages_in_total", observations), 0) >= sent > 0:
                    windows_done = now
                # Each scrape costs the worker a registry walk and /proc reads: at 10 per second they
                # took about 8 % of its CPU (py-spy), so poll at 4 Hz (±0.25 s on a drain of 10-20 s).
                time.sleep(0.25)
            producing.join(timeout=60)
        finally:
            worker.stop()
    produce_rate = len(encoded) / produce_s[0] if produce_s else float("nan")
    assert first is not None and gps_done is not None and windows_done is not None
    timed = len(encoded) - consumed_before
    if windows_done <= first or gps_done <= first or timed < len(encoded) / 2:
        raise click.ClickException(
            f"{consumed_before:.0f} of {len(encoded)} fixes were consumed before the first poll: too few to time;"
            " add vehicles or duration"
        )
    matched_rate = timed / (gps_done - first)
    full_rate = timed / (windows_done - first)
    result = {
        "fixes": len(encoded),
        "fixes_timed": int(timed),
        "vehicles": vehicles,
        "matcher_alone_fixes_per_s": round(alone),
        "produce_fixes_per_s": round(produce_rate),
        "worker_matched_fixes_per_s": round(matched_rate),
        "worker_with_segment_windows_fixes_per_s": round(full_rate),
        "ratio_worker_to_matcher_alone": round(full_rate / alone, 3),
        "target_fixes_per_s": TARGET_FIXES_PER_S,
        "ratio_to_target": round(full_rate / TARGET_FIXES_PER_S, 3),
        "dead_letters": _dead_letters(c),
    }
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        "\n".join(
            [
                f"GPS through the broker and one Faust worker (synthetic fleet, {vehicles} vehicles, "
                f"{len(encoded)} fixes; timed from the first poll that saw fixes consumed: {timed:.0f} fixes)",
                f"  map matcher alone, in process       {alone:8.0f} fixes/s",
                f"  produce to {gps:<24} {produce_rate:8.0f} fixes/s",
                f"  worker: consumed and map-matched    {matched_rate:8.0f} fixes/s",
                f"  worker: + segment windows (all done) {full_rate:7.0f} fixes/s  "
                f"= {full_rate / alone:.2f} x matcher alone, {full_rate / TARGET_FIXES_PER_S:.2f} x target "
                f"({TARGET_FIXES_PER_S:.0f}/s)",
                f"  worker log: {Path(worker.process.log_path)}",
            ]
        )
    )
