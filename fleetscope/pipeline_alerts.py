"""``fleetscope eval pipeline-alerts``: the alert rules, every condition included, on what the whole
pipeline makes of simulated worlds, tuned on one world and reported on others.

``eval alert-rules`` replays SA-CLIP alone on dataset frames; conditions on the scene graph's objects,
its triplets and the kinematics need the pipeline (the camera geometry, the GPS join, the tracks). So
each world is streamed through its own embedded stack as ``fleetscope demo`` streams it (10 minutes of
six vehicles by default), its scenes are recorded from ``fleet.scenes`` with the simulator's truth
(``var/eval/pipeline/<seed>-<seconds>s/``, reused unless ``--fresh`` or the served checkpoints
changed), and the rules are replayed on the recordings through the worker's incident tracker.
``--tune`` chooses the object conditions and their rules' persistence on the tuning world only
(``sim.seeds.ALERT_TUNING``); the held-out worlds (``sim.seeds.ALERT_HELD_OUT``) and the demo's world
played no part in choosing anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import click

from core.cli_support import settings_or_exit
from evaluation.cli import out_option, write_report
from records.messages import Scene, decode
from sim import seeds
from sim.truth import AnomalyEvent, FrameTruth

CACHE = Path("var/eval/pipeline")


@dataclass(frozen=True)
class Recording:
    """What the pipeline made of one world, with the simulator's truth."""

    scenes: list[Scene]
    frames: dict[str, FrameTruth]
    events: list[AnomalyEvent]


def record(seed: int, duration_s: int, folder: Path, log: Callable[[str], None]) -> Recording:
    """Stream world ``seed`` through an embedded stack of its own and record its scenes into ``folder``."""
    from fleetscope import demo
    from infra.stack import Stack, reap_leftovers

    base = settings_or_exit()
    settings = demo.recorded_morning(
        base.model_copy(update={"stack": base.stack.model_copy(update={"run_dir": (folder / "run").resolve()})})
    )
    stack = Stack(settings)
    reap_leftovers(settings)
    log(f"world {seed}: starting a stack in {folder / 'run'} ...")
    stack.start()
    try:
        since = datetime.now(timezone.utc)
        summary, truth = demo.produce(settings, 6, duration_s, seed, 0.0)
        scenes: list[Scene] = []
        demo.collect(settings, summary, set(truth.frames), since, 1800, log, keep=scenes)
    finally:
        stack.stop()
    (folder / "scenes.jsonl").write_bytes(b"\n".join(s.encode() for s in scenes) + b"\n")
    (folder / "frames.jsonl").write_text("".join(f.model_dump_json() + "\n" for f in truth.frames.values()))
    (folder / "events.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in truth.events))
    log(f"world {seed}: {len(scenes)} scenes of {summary.frames_produced} frames recorded")
    return load(folder)


def load(folder: Path) -> Recording:
    """A recording written by ``record``."""
    scenes = [decode(Scene, line) for line in (folder / "scenes.jsonl").read_bytes().splitlines() if line]
    frames = [FrameTruth.model_validate(json.loads(x)) for x in (folder / "frames.jsonl").read_text().splitlines()]
    events = [AnomalyEvent.model_validate(json.loads(x)) for x in (folder / "events.jsonl").read_text().splitlines()]
    return Recording(scenes, {f.frame_id: f for f in frames}, events)


def served_models() -> dict[str, str]:
    """The checkpoints the stack's Triton serves (installed first where missing), file -> sha256."""
    from infra.triton import ensure_checkpoints
    from models.shipped import sha256

    settings = settings_or_exit()
    ensure_checkpoints(settings)
    return {p.name: sha256(p) for p in sorted(settings.triton.checkpoint_dir.glob("*.pt"))}


def recording(seed: int, duration_s: int, fresh: bool, models: dict[str, str]) -> Recording:
    """World ``seed``'s recording: reused when it was made with the checkpoints served now (``models``),
    else streamed."""
    folder = CACHE / f"{seed}-{duration_s}s"
    made_with = folder / "models.json"
    if not fresh and (folder / "events.jsonl").exists():
        if made_with.exists() and json.loads(made_with.read_text()) == models:
            click.echo(f"world {seed}: the recording in {folder}", err=True)
            return load(folder)
        click.echo(
            f"world {seed}: the recording in {folder} was made with other checkpoints: streaming again", err=True
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "events.jsonl").unlink(missing_ok=True)  # written last: a recording is complete once it exists
    made_with.write_text(json.dumps(models, indent=1))
    return record(seed, duration_s, folder, lambda m: click.echo(m, err=True))


@click.command("pipeline-alerts")
@click.option(
    "--rules",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="alert rules to replay [default: the worker's, FLEETSCOPE_WORKER__ALERT_RULES]",
)
@click.option("--duration", default=600, show_default=True, help="simulated seconds of each world (six vehicles)")
@click.option("--fresh", is_flag=True, help="stream the worlds again instead of reusing their recordings")
@click.option(
    "--tune",
    is_flag=True,
    help="first choose the object conditions (score, distance ahead, width of our path) and their rules'"
    " persistence for the best F1 on the tuning world, print them, and report those",
)
@out_option("var/eval/pipeline_alerts.md", "the table")
def pipeline_alerts(rules: Path | None, duration: int, fresh: bool, tune: bool, out: Path) -> None:
    """Alert precision, recall and latency by type, every rule condition included, on what the whole
    pipeline makes of the tuning world, the two held-out worlds and the demo's world, side by side
    (synthetic data). Streams each world through its own embedded stack on first use (about 2 minutes
    each), then replays the rules on the recordings in seconds."""
    from alerts.rules import load_rules
    from evaluation.alert_rules import object_thresholds, replay_scenes, side_by_side, tune_object_conditions

    worker = settings_or_exit().worker
    rule_set = load_rules(rules or worker.alert_rules)
    worlds = {
        f"tuning (seed {seeds.ALERT_TUNING})": seeds.ALERT_TUNING,
        **{f"held-out seed {s}": s for s in seeds.ALERT_HELD_OUT},
        f"demo world (seed {seeds.DEMO})": seeds.DEMO,
    }
    models = served_models()
    recorded = {name: recording(seed, duration, fresh, models) for name, seed in worlds.items()}
    tuning = recorded[next(iter(worlds))]
    if tune:
        rule_set, f1 = tune_object_conditions(
            tuning.scenes, tuning.frames, tuning.events, rule_set, worker.alert_cooldown_s
        )
        click.echo("tuned on the tuning world (F1 there: " + ", ".join(f"{t} {v:.2f}" for t, v in f1.items()) + ")")
        click.echo(object_thresholds(rule_set) + "\n")
    reports = {
        name: replay_scenes(r.scenes, r.frames, r.events, rule_set, worker.alert_cooldown_s)
        for name, r in recorded.items()
    }
    held_out = [name for name in worlds if name.startswith("held-out")]
    text = (
        f"Alert rules of {rules or worker.alert_rules} on the pipeline's scenes, {duration} s of six vehicles"
        " per world (synthetic data; thresholds tuned on the first column only; each vehicle's incidents"
        " count separately)\n\n" + side_by_side(reports, held_out)
    )
    write_report(out, text)
