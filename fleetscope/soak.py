"""``fleetscope bench soak``: worker and Triton memory over a long, steadily paced stream.

A simulated fleet (the demo's recorded morning: ``sim.world`` rendered and sent by ``sim.publish``)
streams frames and GPS into an embedded stack of its own (free ports, ``var/bench-soak``) for the
wall time asked. Every ``--sample-s`` seconds the resident memory of the worker and of Triton
(tritonserver plus its python-backend stubs, summed) is read with psutil, with the frames processed
so far (scenes the worker published, from its /metrics), and printed as one line. The first part of the
run is warm-up (models loaded, caches and buffers filling) and is left out of the figures. At the end
a table gives, per process, RSS at the start of steady state, at the end, its maximum and the drift:
the median of the last quarter of steady samples minus that of the first quarter. RSS counts as flat
when the drift is within ``FLAT_BOUND`` of the first quarter's median.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from core.settings import Settings
    from infra.stack import Stack

FLAT_BOUND = 0.05  # |drift| / first-quarter median at or under this: flat
MB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    """One reading, ``t_s`` seconds after streaming began."""

    t_s: float
    phase: str  # "warm-up", "steady" (the figures use these only) or "drain" (after streaming stopped)
    worker_mb: float
    triton_mb: float  # tritonserver plus its stubs
    triton_processes: int
    frames_produced: int
    frames_processed: int  # scenes published by the worker (frames through the whole pipeline)
    lag: int  # summed over the partitions the worker consumes

    def line(self) -> str:
        return (
            f"{self.t_s:7.0f} s  {self.phase:<7}  worker {self.worker_mb:7.1f} MB  "
            f"triton {self.triton_mb:7.1f} MB ({self.triton_processes} proc)  "
            f"frames {self.frames_processed:>6}/{self.frames_produced:<6}  lag {self.lag}"
        )


@dataclass(frozen=True)
class Drift:
    """RSS of one process (tree) over the steady samples."""

    start_mb: float
    end_mb: float
    max_mb: float
    first_quarter_mb: float
    last_quarter_mb: float
    drift_mb: float
    drift_mb_per_h: float
    drift_fraction: float
    flat: bool


def drift(points: list[tuple[float, float]], bound: float = FLAT_BOUND) -> Drift:
    """Figures for (seconds, MB) readings in time order: medians of the first and last quarter (at least one
    reading each) and the drift between them, per hour over the time between the quarters' median times."""
    if len(points) < 2:
        raise ValueError("need at least two steady readings")
    q = max(1, len(points) // 4)
    first, last = points[:q], points[-q:]
    first_mb = statistics.median(mb for _, mb in first)
    last_mb = statistics.median(mb for _, mb in last)
    hours = (statistics.median(t for t, _ in last) - statistics.median(t for t, _ in first)) / 3600
    change = last_mb - first_mb
    fraction = change / first_mb if first_mb else 0.0
    return Drift(
        start_mb=points[0][1],
        end_mb=points[-1][1],
        max_mb=max(mb for _, mb in points),
        first_quarter_mb=first_mb,
        last_quarter_mb=last_mb,
        drift_mb=change,
        drift_mb_per_h=change / hours if hours > 0 else 0.0,
        drift_fraction=fraction,
        flat=abs(fraction) <= bound,
    )


@dataclass
class Soak:
    """A soak run's readings and the figures made from them."""

    minutes: float
    vehicles: int
    speed: float
    sample_s: float
    warmup_s: float
    samples: list[Sample] = field(default_factory=list)
    stream_s: float = 0.0
    stack_start_s: float = 0.0
    interrupted: bool = False

    def steady(self) -> list[Sample]:
        return [s for s in self.samples if s.phase == "steady"]

    def figures(self) -> dict[str, object]:
        """Everything the summary says, as plain values (the --json object)."""
        steady = self.steady()
        out: dict[str, object] = {
            "minutes": self.minutes,
            "vehicles": self.vehicles,
            "speed": self.speed,
            "sample_s": self.sample_s,
            "warmup_s": self.warmup_s,
            "flat_bound": FLAT_BOUND,
            "stack_start_s": round(self.stack_start_s, 1),
            "stream_s": round(self.stream_s, 1),
            "interrupted": self.interrupted,
            "steady_samples": len(steady),
        }
        last = self.samples[-1] if self.samples else None
        out["frames_produced"] = last.frames_produced if last else 0
        out["frames_processed"] = last.frames_processed if last else 0
        if len(steady) >= 2:
            span = steady[-1].t_s - steady[0].t_s
            worker = drift([(s.t_s, s.worker_mb) for s in steady])
            triton = drift([(s.t_s, s.triton_mb) for s in steady])
            out["steady_frames_per_s"] = round((steady[-1].frames_processed - steady[0].frames_processed) / span, 2)
            out["worker"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(worker).items()}
            out["triton"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(triton).items()}
            out["flat"] = worker.flat and triton.flat
        out["samples"] = [asdict(s) for s in self.samples]
        return out

    def text(self) -> str:
        f = self.figures()
        pace = f"{self.speed:g}x real time, {self.vehicles * self.speed / 2:g} frames/s offered"
        lines = [
            f"fleetscope soak: worker and Triton RSS ({self.vehicles} vehicles, {pace}; synthetic fleet)",
            f"  streamed {self.stream_s:.0f} s{' (interrupted)' if self.interrupted else ''} after a stack start of "
            f"{self.stack_start_s:.1f} s; warm-up "
            f"{self.warmup_s:.0f} s left out; {f['steady_samples']} steady samples every {self.sample_s:g} s",
        ]
        if "worker" not in f:
            return "\n".join([*lines, "  too few steady samples for figures: run longer or sample more often"])
        lines.append(
            f"  {'':<8} {'start':>9} {'end':>9} {'max':>9} {'1st qtr':>9} {'last qtr':>9} {'drift':>9} "
            f"{'drift/h':>10} {'drift':>7}"
        )
        for name in ("worker", "triton"):
            d = Drift(**f[name])  # type: ignore[arg-type]
            lines.append(
                f"  {name:<8} {d.start_mb:6.1f} MB {d.end_mb:6.1f} MB {d.max_mb:6.1f} MB {d.first_quarter_mb:6.1f} MB "
                f"{d.last_quarter_mb:6.1f} MB {d.drift_mb:+6.1f} MB {d.drift_mb_per_h:+7.1f} MB "
                f"{d.drift_fraction:+7.1%}  {'flat' if d.flat else 'NOT FLAT'}"
            )
        lines += [
            f"  frames processed {f['frames_processed']} of {f['frames_produced']} produced; "
            f"{f['steady_frames_per_s']} frames/s in steady state",
            f"  RSS stayed flat (|drift| <= {FLAT_BOUND:.0%} of the first quarter's median, worker and Triton): "
            f"{'yes' if f['flat'] else 'NO'}",
        ]
        return "\n".join(lines)


def tree_rss(pid: int) -> tuple[float, int]:
    """Resident MB of a process and all its descendants, summed, and how many processes that is."""
    import psutil

    root = psutil.Process(pid)
    total, n = root.memory_info().rss, 1
    for child in root.children(recursive=True):
        try:
            total += child.memory_info().rss
            n += 1
        except psutil.NoSuchProcess:  # a child that exited between listing and reading
            continue
    return total / MB, n


def worker_counts(settings: Settings) -> tuple[int, int]:
    """(scenes published, consumer lag summed over partitions) from the worker's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    from streams import topics

    url = f"http://127.0.0.1:{settings.worker.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    scenes, lag = 0.0, 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "fleetscope_messages_out_total" and s.labels.get("topic") == settings.topic(topics.SCENES):
                scenes = s.value
            elif s.name == "fleetscope_consumer_lag":
                lag += s.value
    return int(scenes), int(lag)


class Sampler:
    """Reads the worker's and Triton's RSS and the worker's counters, at most once per ``every_s``."""

    def __init__(self, stack: Stack, soak: Soak, progress: Callable[[str], None], produced: Callable[[], int]) -> None:
        self.settings = stack.settings
        self.soak, self.progress, self.produced = soak, progress, produced
        from core.errors import ConfigError

        local = {svc.name: getattr(svc, "process", None) for svc in stack.started}
        if "worker" not in local or "triton" not in local:
            raise ConfigError("bench soak measures a local worker and Triton: unset FLEETSCOPE_TRITON__URL")
        self.processes = {name: local[name] for name in ("worker", "triton")}
        self.t0 = time.monotonic()
        self.next_at = self.t0
        self.counts = (0, 0)

    def due(self, phase: str) -> None:
        if time.monotonic() >= self.next_at:
            self.take(phase)

    def take(self, phase: str) -> Sample:
        import psutil

        from core.errors import ServiceError

        now = time.monotonic()
        self.next_at = max(self.next_at + self.soak.sample_s, now)
        rss: dict[str, tuple[float, int]] = {}
        for name, process in self.processes.items():
            if process is None or not process.running() or process.pid is None:
                raise ServiceError(name, f"exited during the soak; see {process.log_path if process else 'its log'}")
            try:
                rss[name] = tree_rss(process.pid)
            except psutil.NoSuchProcess:
                raise ServiceError(name, f"exited during the soak; see {process.log_path}") from None
        try:
            self.counts = worker_counts(self.settings)
        except (urllib.error.URLError, OSError) as exc:  # a slow scrape keeps the last counts
            self.progress(f"worker metrics not read ({exc}); keeping the last counts")
        sample = Sample(
            t_s=round(now - self.t0, 1),
            phase=phase,
            worker_mb=round(rss["worker"][0], 1),
            triton_mb=round(rss["triton"][0], 1),
            triton_processes=rss["triton"][1],
            frames_produced=self.produced(),
            frames_processed=self.counts[0],
            lag=self.counts[1],
        )
        self.soak.samples.append(sample)
        self.progress(sample.line())
        return sample


class _StreamOver(Exception):
    """Raised from the publisher's progress callback when the wall time is up."""


def soak_stream(stack: Stack, soak: Soak, seed: int, drain_s: float, progress: Callable[[str], None]) -> None:
    """Stream for ``soak.minutes`` of wall time on a started stack, sampling as it goes; then wait (at most
    ``drain_s``) for the worker to process what was sent, still sampling."""
    from fleetscope import demo
    from roads.network import load_network
    from sim.publish import publish
    from sim.render import render_jpeg
    from sim.world import World, WorldConfig
    from streams import topics
    from streams.producer import FleetProducer

    settings = stack.settings
    world = World(
        load_network(),
        WorldConfig(vehicles=soak.vehicles, incidents_per_vehicle_hour=demo.DEMO_INCIDENT_RATE),
        seed,
        demo.START,
    )
    wall_s = soak.minutes * 60
    frames_topic = settings.topic(topics.FRAMES)
    with FleetProducer(settings) as producer:
        sampler = Sampler(stack, soak, progress, lambda: producer.sent.get(frames_topic, 0))
        end_at = sampler.t0 + wall_s

        def tick(_sim_s: float) -> None:
            now = time.monotonic()
            if now >= end_at:
                raise _StreamOver
            sampler.due("warm-up" if now - sampler.t0 < soak.warmup_s else "steady")

        try:
            # Simulated time runs out a little after the wall time so that the wall time ends the stream.
            publish(world, wall_s * soak.speed + 60, producer, render_jpeg, soak.speed, progress=tick)
        except _StreamOver:
            pass
        finally:
            soak.stream_s = time.monotonic() - sampler.t0
        producer.flush()
        sampler.take("steady")
    produced = sampler.produced()
    deadline = time.monotonic() + drain_s
    while sampler.counts[0] < produced and time.monotonic() < deadline:
        time.sleep(1)
        sampler.due("drain")
    if sampler.soak.samples[-1].phase != "drain":
        sampler.take("drain")
    if sampler.counts[0] < produced:
        progress(f"{produced - sampler.counts[0]} frames not processed {drain_s:g} s after streaming stopped")


def _settings(run_dir_name: str) -> Settings:
    from core.settings import REPO_ROOT, load_settings
    from fleetscope import demo
    from infra.process import free_ports

    kafka, pg, http, grpc, tmetrics, metrics = free_ports(6)
    settings = load_settings(
        kafka={"embedded_port": kafka},
        postgres={"embedded_port": pg},
        triton={"embedded_http_port": http, "embedded_grpc_port": grpc, "embedded_metrics_port": tmetrics},
        worker={"metrics_port": metrics},
        stack={"run_dir": REPO_ROOT / "var" / run_dir_name},
    )
    return demo.recorded_morning(settings)


@click.command("soak")
@click.option("--minutes", default=30.0, show_default=True, help="wall minutes to stream, warm-up included")
@click.option(
    "--vehicles",
    default=6,
    show_default=True,
    help="vehicles in the simulated fleet (a frame every 2 simulated s each)",
)
@click.option(
    "--speed", default=5.0, show_default=True, help="simulated seconds per wall second (the pace; must be > 0)"
)
@click.option("--rate", type=float, help="frames per wall second instead of --speed (speed = 2 x rate / vehicles)")
@click.option("--sample-s", default=10.0, show_default=True, help="seconds between RSS readings")
@click.option(
    "--warmup-s", type=float, help="seconds left out of the figures at the start [default: 10 % of the run, >= 30 s]"
)
@click.option("--drain-s", default=120.0, show_default=True, help="bound on waiting for the backlog after streaming")
@click.option("--seed", default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="also print the figures and samples as one JSON object last")
def bench_soak(
    minutes: float,
    vehicles: int,
    speed: float,
    rate: float | None,
    sample_s: float,
    warmup_s: float | None,
    drain_s: float,
    seed: int,
    as_json: bool,
) -> None:
    """Worker and Triton RSS over a long paced stream of a simulated fleet: flat or not.

    Starts its own embedded stack (broker, PostgreSQL, Triton, worker) on free ports under var/bench-soak,
    streams frames and GPS for --minutes, prints one line per reading, then a table: RSS at the start of
    steady state, at the end, the maximum, and the drift (median of the last quarter of steady readings
    minus that of the first, in MB and MB per hour). RSS is flat when the drift is within 5 % of the
    first quarter's median. Exits 0 when both stayed flat, 1 when either did not or the run failed,
    130 on Ctrl-C (after stopping the stack and printing what was measured).
    """
    try:
        import psutil  # noqa: F401
    except ImportError:
        raise click.ClickException("bench soak needs psutil: pip install psutil") from None
    from core.errors import FleetscopeError
    from infra.stack import Stack, reap_leftovers, terminate_as_interrupt

    if rate is not None:
        speed = 2 * rate / vehicles
    if speed <= 0 or minutes <= 0 or sample_s <= 0 or vehicles <= 0:
        raise click.BadParameter("--minutes, --vehicles, --speed (or --rate) and --sample-s must be > 0")
    wall_s = minutes * 60
    if warmup_s is None:
        warmup_s = min(max(30.0, 0.1 * wall_s), wall_s / 2)
    progress: Callable[[str], None] = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    soak = Soak(minutes=minutes, vehicles=vehicles, speed=speed, sample_s=sample_s, warmup_s=warmup_s)
    settings = _settings("bench-soak")
    stack = Stack(settings, with_worker=True)
    code = 0
    try:
        with terminate_as_interrupt():
            reap_leftovers(settings)
            progress(f"starting the stack under {settings.stack.run_dir} ...")
            t0 = time.monotonic()
            stack.start()
            soak.stack_start_s = time.monotonic() - t0
            progress(
                f"stack ready in {soak.stack_start_s:.1f} s; streaming {minutes:g} min of {vehicles} vehicles at "
                f"{speed:g}x ({vehicles * speed / 2:g} frames/s), a reading every {sample_s:g} s "
                f"(the first {warmup_s:g} s are warm-up)"
            )
            soak_stream(stack, soak, seed, drain_s, progress)
    except KeyboardInterrupt:
        click.echo("interrupted; stopping the stack", err=True)
        soak.interrupted = True
        code = 130
    except FleetscopeError as exc:
        click.echo(f"fleetscope bench soak failed: {exc}", err=True)
        code = 1
    finally:
        stack.stop()
    if soak.samples:
        click.echo(soak.text())
        if as_json:
            click.echo(json.dumps(soak.figures(), sort_keys=True))
    if code == 0 and not soak.figures().get("flat", False):
        code = 1
    sys.exit(code)
