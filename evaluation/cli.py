"""``fleetscope eval``: score pipeline parts against the simulator's ground truth (synthetic data)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from models.training.cli import weights_dir_option
from sim.cli import DEFAULT_START, start_time


@click.group("eval")
def evaluate() -> None:
    """Evaluations against the simulator's ground truth; each prints a table of measured figures."""


@evaluate.command("map-matching")
@click.option("--vehicles", default=200, show_default=True, help="fleet size (more vehicles fill more windows)")
@click.option("--duration", default=600.0, show_default=True, help="simulated seconds")
@click.option("--seed", default=7, show_default=True)
@click.option("--gps-noise", default=5.0, show_default=True, help="GPS noise, metres per axis")
@click.option("--start", default=DEFAULT_START, show_default=True, help="simulated start time (ISO 8601)")
@click.option("--network", type=click.Path(exists=True, dir_okay=False), help=".osm.pbf road network")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of text")
def map_matching(
    vehicles: int, duration: float, seed: int, gps_noise: float, start: str, network: str | None, as_json: bool
) -> None:
    """Share of GPS fixes matched to their true segment; segment median speeds against the truth."""
    from evaluation.map_matching import evaluate as run
    from streams.context.road_network import load_network

    report = run(load_network(network), vehicles, duration, seed, start_time(start), gps_noise_m=gps_noise)
    if as_json:
        click.echo(json.dumps({**asdict(report), "accuracy": report.accuracy}))
    else:
        click.echo(report.text())


@evaluate.command("clip")
@weights_dir_option("--weights", "directory with base_clip.pt and sa_clip.pt", must_exist=True)
@click.option("--seed", default=0, show_default=True, help="seed of the few-shot draws and prompt training")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("var/eval/clip.md"),
    show_default=True,
    help="also write the tables here (and the figures as JSON next to it)",
)
def clip(weights: Path, seed: int, out: Path) -> None:
    """ST-CLIP vs zero-shot, CoOp and CoCoOp per aspect at 1-16 shots; SA-CLIP vs base CLIP on relations and
    zero-shot anomaly AUC (held-out types). Trains the few-shot prompts it compares (about 10 minutes)."""
    from evaluation.clip import evaluate as run

    report = run(weights, seed=seed, log=lambda m: click.echo(m, err=True))
    text = report.markdown()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    out.with_suffix(".json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    click.echo(text)
    click.echo(f"\nwrote {out} and {out.with_suffix('.json')}")


@evaluate.command("scene-graph")
@weights_dir_option("--weights", "directory with scene_graph.pt and scene_graph_ablation.pt", must_exist=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("var/eval/scene_graph.md"),
    show_default=True,
    help="also write the tables here",
)
def scene_graph(weights: Path, out: Path) -> None:
    """Scene-graph R@K and mR@K (with and without the one-predicate-per-pair constraint) against the
    ablation without the VLM-aided parts, and the kinematics errors (ego from GPS, objects from the
    camera), on the benchmark's test split. Takes a few minutes."""
    import torch

    from evaluation import kinematics
    from evaluation import scene_graph as sgg
    from models.checkpoints import load_checkpoint
    from models.scene_graph import IMAGE_SIZE, SceneGraphModel
    from models.training.dataset import BENCHMARK_FRAMES, BENCHMARK_SEED, ensure_export, load_frames

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    bench = load_frames(ensure_export(BENCHMARK_SEED, BENCHMARK_FRAMES), IMAGE_SIZE)
    test = bench.split("test")
    tables = {}
    for name in ("scene_graph.pt", "scene_graph_ablation.pt"):
        model = load_checkpoint(weights / name)
        assert isinstance(model, SceneGraphModel)
        tables[name] = sgg.evaluate_model(model, bench, test, log=lambda m: click.echo(m, err=True))
        if name == "scene_graph.pt":
            kin = kinematics.evaluate(model, bench, test, log=lambda m: click.echo(m, err=True))
    text = sgg.markdown(tables) + "\n" + sgg.size_profile(bench, test) + "\n\n" + kin.markdown()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    click.echo(text)
    click.echo(f"\nwrote {out}")


@evaluate.command("alert-rules")
@weights_dir_option("--weights", "directory with sa_clip.pt", must_exist=True)
@click.option(
    "--rules",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="alert rules to replay [default: the worker's, FLEETSCOPE_WORKER__ALERT_RULES]",
)
@click.option(
    "--split",
    "splits",
    default="train,val",
    show_default=True,
    help="benchmark splits to replay (comma-separated); rules are tuned on train,val and checked on test",
)
def alert_rules(weights: Path, rules: Path | None, splits: str) -> None:
    """Alert precision, recall and latency by type when the rules' SA-CLIP conditions are replayed on
    the benchmark's frames through the worker's incident tracker (no stack needed; about a minute).
    Triplet and kinematic conditions are left out: `fleetscope demo --evaluate` runs those."""
    import torch

    from alerts.rules import load_rules
    from evaluation.alert_rules import replay_rules
    from fleetscope.settings import get_settings
    from models.checkpoints import load_checkpoint
    from models.sa_clip import SAClip
    from models.training.dataset import BENCHMARK_FRAMES, BENCHMARK_SEED, ensure_export, load_frames

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    worker = get_settings().worker
    rule_set = load_rules(rules or worker.alert_rules)
    sa = load_checkpoint(weights / "sa_clip.pt")
    assert isinstance(sa, SAClip)
    bench = load_frames(ensure_export(BENCHMARK_SEED, BENCHMARK_FRAMES), sa.image_cfg.size)
    names = tuple(s.strip() for s in splits.split(","))
    report = replay_rules(
        sa, bench, bench.split(*names), rule_set, worker.alert_cooldown_s, log=lambda m: click.echo(m, err=True)
    )
    click.echo(f"benchmark splits {', '.join(names)}; SA-CLIP conditions of {rules or worker.alert_rules}")
    click.echo(report.text())
