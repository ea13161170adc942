"""``fleetscope bench frames``: frames/s through the whole pipeline beside what the same Triton serves.

One embedded stack (broker, PostgreSQL, Triton, one worker) and one simulated fleet, in one run:

(a) model-only: the three models called as the worker calls them (its client, its batch size, its two
    inference batches in flight, each batch's three requests at once) on the frames' JPEGs, worker idle;
(b) the pipeline draining those frames and their GPS fixes as a backlog (Kafka, worker, Triton,
    PostgreSQL, output topics), timed from the first metrics poll that sees frames consumed until
    every frame's scene is on ``fleet.scenes``;
(c) the naive baseline a first attempt would write: a kafka-python loop over the same frames that
    calls each model synchronously per message and inserts and commits one row per frame;
(d) end-to-end latency: later frames of the same fleet produced at 70 % of (b)'s rate, from each
    frame's Kafka timestamp to its scene's on ``fleet.scenes``.

It prints the rates, (b)/(a) and (b)/(c), Triton's compute and queue time per request and model
during (b), and the CPU milliseconds per frame of the worker, Triton and the bench's own process in each phase.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import click
import numpy as np

from infra.scrape import scrape

INFER_CONCURRENCY = 2  # streams/inference/agent.py: the infer agent's concurrency (batches in flight)
LATENCY_LOAD = 0.7  # (d) runs at this share of (b)'s rate (issue 23: p99 <= 2 s there)
FRAME_INTERVAL_S = 2.0  # sim.world.WorldConfig: a frame every 2 s per vehicle
MODELS = ("st_clip", "sa_clip", "scene_graph")
# The triton settings that change the server (a0) runs on; the others configure its client, as in (a).
SERVER_SETTINGS = ("runtime", "torch_threads", "model_repository", "checkpoint_dir")


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and all its live descendants (Triton's python backend
    stubs are its children), plus what its exited children used (0 when it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:  # exited between listing and reading
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


class CpuMeter:
    """CPU seconds that each named reader counts between ``start`` and ``stop``."""

    def __init__(self, readers: dict[str, Callable[[], float]]) -> None:
        self.readers, self._t0 = readers, dict.fromkeys(readers, 0.0)

    def start(self) -> None:
        self._t0 = {k: read() for k, read in self.readers.items()}

    def stop(self) -> dict[str, float]:
        return {k: read() - self._t0[k] for k, read in self.readers.items()}


def _per_frame(cpu_s: dict[str, float], frames: int) -> dict[str, float]:
    """CPU milliseconds per frame of each reader."""
    return {k: round(1000 * v / frames, 1) for k, v in cpu_s.items()}


def _triton_totals(port: int) -> dict[str, dict[str, float]]:
    """Per model so far, from Triton's /metrics: frames, requests, executions, and the compute and queue
    microseconds summed over requests."""
    wanted = {
        "nv_inference_count": "frames",
        "nv_inference_request_success": "requests",
        "nv_inference_exec_count": "executions",
        "nv_inference_compute_infer_duration_us": "compute_us",
        "nv_inference_queue_duration_us": "queue_us",
    }
    out = {m: dict.fromkeys(wanted.values(), 0.0) for m in MODELS}
    for s in scrape(port):
        # prometheus_client's parser appends _total to some counter names; compare without it.
        key = wanted.get(s.name.removesuffix("_total"))
        if key and s.labels.get("model") in out:
            out[s.labels["model"]][key] += s.value
    return out


def _per_request(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per model between two totals: mean compute and queue milliseconds per request, and mean frames per
    execution. Triton times each request whole, so a request that dynamic batching merged with another
    is charged the merged execution: per request, not per frame."""
    out = {}
    for m in MODELS:
        d = {k: after[m][k] - before[m][k] for k in after[m]}
        n = d["requests"]
        out[m] = {
            "compute_ms_per_request": round(d["compute_us"] / 1000 / n, 1) if n else None,
            "queue_ms_per_request": round(d["queue_us"] / 1000 / n, 1) if n else None,
            "frames_per_execution": round(d["frames"] / d["executions"], 1) if d["executions"] else None,
        }
    return out


async def _model_only(triton_cfg: Any, jpegs: Sequence[bytes], batch: int, in_flight: int) -> float:
    """Seconds to serve ``jpegs`` in batches, ``in_flight`` batches at a time, as the worker does."""
    from models.vocab import ST_CONTEXT_DIM
    from streams.inference.triton_client import TritonModels

    models = TritonModels(triton_cfg)
    batches = [list(jpegs[i : i + batch]) for i in range(0, len(jpegs), batch)]
    queue = iter(batches)

    async def serve() -> None:
        for b in queue:
            await models.analyse(b, np.zeros((len(b), ST_CONTEXT_DIM), dtype=np.float32))

    try:
        await models.analyse(batches[0], np.zeros((len(batches[0]), ST_CONTEXT_DIM), dtype=np.float32))  # warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*(serve() for _ in range(in_flight)))
        return time.perf_counter() - t0
    finally:
        await models.close()


def _drain(settings: Any, messages: Sequence[Any], timeout: float) -> tuple[int, float]:
    """(frames, seconds): produce ``messages``, wait for every frame's scene, and time the drain from the
    first frame's Kafka timestamp to the last scene's. (Scene timestamps alone would not do: fusion
    emits scenes in batches of up to ``sink_batch_size``, so they arrive in clumps.)"""
    from records.messages import Frame
    from streams.producer import FleetProducer

    frame_ids = {m.frame_id for m in messages if isinstance(m, Frame)}
    with FleetProducer(settings) as producer:
        for m in messages:
            producer.send_frame(m) if isinstance(m, Frame) else producer.send_gps(m)
    found = _scenes(settings, frame_ids, timeout).values()
    first = min((produced for _, produced in found if produced is not None), default=None)
    last = max(scene_ts for scene_ts, _ in found)
    if first is None or last <= first:
        raise click.ClickException("the scenes carry no frame timestamps to time the pipeline by")
    return len(found), last - first


def _scenes(settings: Any, frame_ids: set[str], timeout: float) -> dict[str, tuple[float, float | None]]:
    """Per frame of ``frame_ids``: the Kafka timestamp (s) of its first scene on ``fleet.scenes`` and of
    the frame it came from; waits for all of them (bounded)."""
    from records.messages import Scene, decode
    from streams import topics
    from streams.reader import topic_reader

    found: dict[str, tuple[float, float | None]] = {}
    consumer = topic_reader(settings, topics.SCENES)
    deadline = time.monotonic() + timeout
    try:
        while len(found) < len(frame_ids):
            if time.monotonic() > deadline:
                missing = len(frame_ids) - len(found)
                raise click.ClickException(f"{missing} of {len(frame_ids)} scenes missing after {timeout:g}s")
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    scene = decode(Scene, rec.value)
                    if scene.frame_id in frame_ids and scene.frame_id not in found:
                        produced = scene.produced_at.timestamp() if scene.produced_at else None
                        found[scene.frame_id] = (rec.timestamp / 1000, produced)
    finally:
        consumer.close()
    return found


def _naive(settings: Any, n_frames: int, timeout: float) -> float:
    """Seconds the naive loop takes for the first ``n_frames`` frames on ``fleet.frames``, from its first poll.

    What a first attempt looks like: one message at a time, each model called synchronously at batch
    one (no GPS context), one INSERT and COMMIT per frame into a table of its own.
    """
    import sqlalchemy as sa
    import tritonclient.grpc as grpcclient
    from kafka import KafkaConsumer

    from records.messages import Frame, decode
    from streams import topics

    # Neither connects when created; the consumer, created last, does.
    client = grpcclient.InferenceServerClient(settings.triton.grpc_url)
    engine = sa.create_engine(settings.postgres.url("psycopg"))
    consumer = KafkaConsumer(
        settings.topic(topics.FRAMES),
        bootstrap_servers=settings.kafka.servers.split(","),
        group_id="bench-frames-naive",
        auto_offset_reset="earliest",
        fetch_max_bytes=settings.kafka.max_message_bytes,
        max_partition_fetch_bytes=settings.kafka.max_message_bytes,
    )
    done, t0 = 0, None
    deadline = time.monotonic() + timeout
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE TEMP TABLE naive_frames (frame_id text PRIMARY KEY, body jsonb)"))
            conn.commit()
            while done < n_frames:
                if time.monotonic() > deadline:
                    raise click.ClickException(f"the naive loop did not finish {n_frames} frames within {timeout:g}s")
                for records in consumer.poll(timeout_ms=500, max_records=1).values():
                    t0 = t0 or time.perf_counter()
                    for rec in records:
                        frame = decode(Frame, rec.value)
                        body = _naive_infer(client, frame.jpeg)
                        conn.execute(
                            sa.text("INSERT INTO naive_frames VALUES (:id, :body)"),
                            {"id": frame.frame_id, "body": json.dumps(body)},
                        )
                        conn.commit()
                        done += 1
                        if done == n_frames:
                            break
    finally:
        consumer.close()
        client.close()
        engine.dispose()
    assert t0 is not None
    return time.perf_counter() - t0


def _naive_infer(client: Any, jpeg: bytes) -> dict[str, Any]:
    """The three models' outputs for one JPEG, one synchronous request each (zero ST context)."""
    import tritonclient.grpc as grpcclient

    from models.vocab import ST_CONTEXT_DIM
    from streams.inference.triton_client import SA_CLIP_OUTPUTS, SCENE_GRAPH_OUTPUTS, ST_CLIP_OUTPUTS

    image = grpcclient.InferInput("IMAGE_JPEG", [1, 1], "BYTES")
    image.set_data_from_numpy(np.array([[jpeg]], dtype=np.object_))
    context = grpcclient.InferInput("ST_CONTEXT", [1, ST_CONTEXT_DIM], "FP32")
    context.set_data_from_numpy(np.zeros((1, ST_CONTEXT_DIM), dtype=np.float32))
    calls = (("st_clip", [image, context], ST_CLIP_OUTPUTS), ("sa_clip", [image], SA_CLIP_OUTPUTS))
    body = {}
    for model, inputs, outputs in (*calls, ("scene_graph", [image], SCENE_GRAPH_OUTPUTS)):
        result = client.infer(model, inputs, outputs=[grpcclient.InferRequestedOutput(o) for o in outputs])
        body[model] = {o: result.as_numpy(o).tolist() for o in outputs}
    return body


def _baseline_triton(settings: Any, changes: dict[str, str]) -> Any:
    """A second embedded tritonserver on free ports, same models and checkpoints, with the Triton
    settings ``changes`` (validated as the settings are; not started)."""
    from pydantic import ValidationError

    from core.settings import TritonSettings
    from infra.process import free_ports
    from infra.triton import EmbeddedTriton

    unknown = set(changes) - set(SERVER_SETTINGS)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise click.BadParameter(
            f"{names}: not a setting of the Triton server (those are {', '.join(SERVER_SETTINGS)})",
            param_hint="--baseline",
        )
    http, grpc, metrics = free_ports(3)
    ports = {"embedded_http_port": http, "embedded_grpc_port": grpc, "embedded_metrics_port": metrics}
    try:
        triton = TritonSettings.model_validate(settings.triton.model_dump() | changes | ports)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--baseline") from None
    stack = settings.stack.model_copy(update={"run_dir": settings.stack.run_dir / "baseline"})
    return EmbeddedTriton(settings.model_copy(update={"triton": triton, "stack": stack}))


@dataclass
class Latency:
    frames: int
    rate: float
    p50_s: float
    p99_s: float
    max_s: float


def _latency(settings: Any, timed: Sequence[tuple[float, Any]], rate: float, timeout: float) -> Latency:
    """Produce ``timed`` (simulated delivery second, message) paced to ``rate`` frames/s; frame-to-scene latency."""
    from records.messages import Frame
    from streams.producer import FleetProducer

    frame_ids = {m.frame_id for _, m in timed if isinstance(m, Frame)}
    if not frame_ids:
        raise click.ClickException("no frames for the latency run: raise --latency-s or --vehicles")
    sim_span = timed[-1][0] - timed[0][0]
    wall_span = len(frame_ids) / rate
    scale = wall_span / sim_span if sim_span else 0.0
    with FleetProducer(settings) as producer:
        t0 = time.monotonic()
        for sim_t, m in timed:
            pause = t0 + (sim_t - timed[0][0]) * scale - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            producer.send_frame(m) if isinstance(m, Frame) else producer.send_gps(m)
        producer.flush()
    sent_s = time.monotonic() - t0

    found = _scenes(settings, frame_ids, timeout)
    latencies = {f: scene_ts - produced for f, (scene_ts, produced) in found.items() if produced is not None}
    ordered = sorted(latencies.values())
    return Latency(
        frames=len(ordered),
        rate=round(len(frame_ids) / sent_s, 1),
        p50_s=round(float(np.percentile(ordered, 50)), 3),
        p99_s=round(float(np.percentile(ordered, 99)), 3),
        max_s=round(ordered[-1], 3),
    )


@click.command("frames")
@click.option("--vehicles", default=6, show_default=True, help="vehicles in the simulated fleet")
@click.option(
    "--duration",
    default=120,
    show_default=True,
    help="simulated seconds of backlog (a frame per 2 s and vehicle)",
)
@click.option("--naive-frames", default=60, show_default=True, help="frames the naive baseline (c) is timed on")
@click.option("--latency-s", default=20.0, show_default=True, help="wall seconds of paced frames for (d)")
@click.option(
    "--baseline",
    "baseline_changes",
    multiple=True,
    default=("runtime=torch",),
    show_default=True,
    metavar="SETTING=VALUE",
    help="(a0): the same models on a second tritonserver with this triton setting changed (repeatable), side by"
    " side with (a); the default is how they were served until 2026-12-03",
)
@click.option("--no-baseline", is_flag=True, help="skip (a0)")
@click.option("--seed", default=7, show_default=True)
@click.option("--timeout", default=600.0, show_default=True, help="bound on waiting for each phase (s)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of text")
def bench_frames(
    vehicles: int,
    duration: int,
    naive_frames: int,
    latency_s: float,
    baseline_changes: tuple[str, ...],
    no_baseline: bool,
    seed: int,
    timeout: float,
    as_json: bool,
) -> None:
    """Frames/s through the whole pipeline beside the models alone and a naive loop, in one run.

    Starts its own stack on free ports under var/bench-frames and stops it at the end. Synthetic
    frames (the simulator's renderer); figures depend on the machine and its load.
    """
    from core.settings import REPO_ROOT, load_settings
    from infra.process import free_ports
    from infra.stack import Stack, terminate_as_interrupt
    from records.messages import Frame
    from roads.network import load_network
    from sim.cli import DEFAULT_START
    from sim.publish import as_message, in_delivery_order
    from sim.render import render_jpeg
    from sim.world import World, WorldConfig

    changes = dict(c.partition("=")[::2] for c in baseline_changes)
    if any("=" not in c for c in baseline_changes):
        raise click.BadParameter("write each as SETTING=VALUE, e.g. runtime=torch", param_hint="--baseline")
    baseline_label = ", ".join(f"{k}={v}" for k, v in changes.items())
    kafka, pg, http, grpc, tmetrics, metrics_port = free_ports(6)
    settings = load_settings(
        kafka={"embedded_port": kafka},
        postgres={"embedded_port": pg},
        triton={"embedded_http_port": http, "embedded_grpc_port": grpc, "embedded_metrics_port": tmetrics},
        # The simulated morning is a fixed date: admit it, or a worker dead-letters it once it is a week old.
        worker={"metrics_port": metrics_port, "backfill_from": DEFAULT_START},
        stack={"run_dir": REPO_ROOT / "var" / "bench-frames"},
    )
    baseline = None if no_baseline else _baseline_triton(settings, changes)
    batch = settings.triton.batch_size
    click.echo(f"simulating and rendering {vehicles} vehicles for {duration} s ...", err=True)
    world = World(load_network(), WorldConfig(vehicles=vehicles), seed, datetime.fromisoformat(DEFAULT_START))
    messages = [as_message(e, render_jpeg) for e in in_delivery_order(world.run(duration))]
    frames = [m for m in messages if isinstance(m, Frame)]
    if naive_frames > len(frames):
        raise click.BadParameter(f"{naive_frames} > the {len(frames)} frames simulated", param_hint="--naive-frames")

    stack = Stack(settings)
    with terminate_as_interrupt():
        stack.start()
        try:
            by_name: dict[str, Any] = {s.name: s for s in stack.started}
            cpu = CpuMeter(
                {name: partial(_tree_cpu, by_name[name].process.pid) for name in ("triton", "worker")}
                # This process alone (not the stack it started): (a)'s client, (b)'s producer, all of (c).
                | {"bench": time.process_time}
            )

            jpegs = [f.jpeg for f in frames]
            click.echo(f"(a) model-only: {len(frames)} frames, batches of {batch} ...", err=True)
            a_s = a0_s = 0.0
            cpu_a: dict[str, float] = {}
            try:
                if baseline is not None:
                    click.echo(f"starting a second tritonserver with {baseline_label} ...", err=True)
                    baseline.start()
                # Two rounds, the servers in turn (in the other order the second time), so that a slow
                # moment of this shared machine falls on both alike.
                for first_baseline in (True, False):
                    if baseline is not None and first_baseline:
                        a0_s += asyncio.run(_model_only(baseline.settings.triton, jpegs, batch, INFER_CONCURRENCY))
                    cpu.start()
                    a_s += asyncio.run(_model_only(settings.triton, jpegs, batch, INFER_CONCURRENCY))
                    cpu_a = {k: cpu_a.get(k, 0.0) + v for k, v in cpu.stop().items()}
                    if baseline is not None and not first_baseline:
                        a0_s += asyncio.run(_model_only(baseline.settings.triton, jpegs, batch, INFER_CONCURRENCY))
            finally:
                if baseline is not None:
                    baseline.stop()

            click.echo(f"(b) pipeline: {len(frames)} frames and {len(messages) - len(frames)} fixes ...", err=True)
            triton0 = _triton_totals(tmetrics)
            cpu.start()
            b_frames, b_s = _drain(settings, messages, timeout)
            cpu_b = cpu.stop()
            stages = _per_request(triton0, _triton_totals(tmetrics))

            click.echo(f"(c) naive loop: {naive_frames} frames ...", err=True)
            cpu.start()
            c_s = _naive(settings, naive_frames, timeout)
            cpu_c = cpu.stop()

            b_rate = b_frames / b_s
            # At most what the models alone serve: a short backlog times the pipeline coarsely.
            rate = LATENCY_LOAD * min(b_rate, 2 * len(frames) / a_s)
            more = max(1.0, rate * latency_s * FRAME_INTERVAL_S / vehicles)
            click.echo(f"(d) latency: {more:.0f} more simulated seconds at {rate:.1f} frames/s ...", err=True)
            timed = [(e.delivered_t, as_message(e, render_jpeg)) for e in in_delivery_order(world.run(more))]
            latency = _latency(settings, timed, rate, timeout)
        finally:
            stack.stop()

    a_rate, c_rate = 2 * len(frames) / a_s, naive_frames / c_s
    cpu_ms = {
        "model_only": _per_frame(cpu_a, 2 * len(frames)),
        "pipeline": _per_frame(cpu_b, len(frames)),
        "naive": _per_frame(cpu_c, naive_frames),
    }
    a0_rate = 2 * len(frames) / a0_s if a0_s else None
    result = {
        "frames": len(frames),
        "synthetic": True,
        "batch_size": batch,
        "batches_in_flight": INFER_CONCURRENCY,
        "runtime": settings.triton.runtime,
        "model_only_frames_per_s": round(a_rate, 1),
        "baseline": {"triton": changes, "model_only_frames_per_s": round(a0_rate, 1)} if a0_rate else None,
        "ratio_model_only_to_baseline": round(a_rate / a0_rate, 3) if a0_rate else None,
        "pipeline_frames_per_s": round(b_rate, 1),
        "naive_frames_per_s": round(c_rate, 1),
        "ratio_pipeline_to_model_only": round(b_rate / a_rate, 3),
        "ratio_pipeline_to_naive": round(b_rate / c_rate, 2),
        "triton_in_pipeline": stages,
        "cpu_ms_per_frame": cpu_ms,
        "latency": vars(latency),
    }
    if as_json:
        click.echo(json.dumps(result))
        return
    rows = [
        (f"(a0) model-only as (a), {baseline_label}", a0_rate, None),
        (f"(a) model-only, the worker's client, runtime {settings.triton.runtime}", a_rate, cpu_ms["model_only"]),
        ("(b) pipeline draining a backlog", b_rate, cpu_ms["pipeline"]),
        (f"(c) naive loop, one message at a time ({naive_frames} frames)", c_rate, cpu_ms["naive"]),
    ]
    lines = [f"Frames through fleetscope (synthetic fleet, {vehicles} vehicles, {len(frames)} frames; one run)"]
    lines += [
        f"  {name:<58} {rate:6.1f} frames/s" + (f"   CPU ms per frame {used}" if used else "")
        for name, rate, used in rows
        if rate is not None
    ]
    ratios = f"(b)/(a) = {b_rate / a_rate:.2f} (target 0.9), (b)/(c) = {b_rate / c_rate:.1f} (target 5)"
    if a0_rate:
        ratios += f", (a)/(a0) = {a_rate / a0_rate:.2f}" + (" (target 1.5)" if changes == {"runtime": "torch"} else "")
    lines.append("  " + ratios)
    for m, v in stages.items():
        lines.append(
            f"  Triton during (b), {m}: {v['compute_ms_per_request']} ms compute + {v['queue_ms_per_request']} ms"
            f" queued per request, {v['frames_per_execution']} frames per execution"
        )
    lines.append(
        f"  (d) frame to scene at {latency.rate} frames/s ({LATENCY_LOAD:.0%} of (b)), {latency.frames} frames:"
        f" p50 {latency.p50_s:.2f} s, p99 {latency.p99_s:.2f} s, max {latency.max_s:.2f} s (target p99 2 s)"
    )
    click.echo("\n".join(lines))
