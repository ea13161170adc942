"""``fleetscope ask``: the five kinematic questions answered frame by frame along one simulated drive."""

from __future__ import annotations

from pathlib import Path

import click

from training.cli import weights_dir_option


@click.command("ask")
@click.option("--drive", default=0, show_default=True, help="which drive of the benchmark test split (0-based)")
@weights_dir_option("--weights", "directory with scene_graph.pt", must_exist=True)
@click.option("--every", default=5, show_default=True, help="answer at every N-th frame")
def ask(drive: int, weights: Path, every: int) -> None:
    """Replay one vehicle's drive of the benchmark test split (synthetic): detect objects with the scene-graph
    model, track them, and answer travelled distance, speed, movement direction, which object is closer and
    relative movement direction in plain language, next to the simulator's truth for the ego speed."""
    import numpy as np
    import torch

    from evaluation.kinematics import detected, drives, ego_motion
    from kinematics.ground import object_positions
    from kinematics.questions import answers
    from kinematics.tracking import VehicleTracker
    from models.checkpoints import load_checkpoint
    from models.scene_graph import IMAGE_SIZE
    from training.dataset import BENCHMARK, ensure_export, load_frames

    bench = load_frames(ensure_export(BENCHMARK), IMAGE_SIZE)
    test_drives = drives(bench, bench.split("test"))
    if not 0 <= drive < len(test_drives):
        raise click.BadParameter(f"the test split has drives 0..{len(test_drives) - 1}", param_hint="--drive")
    (episode, vehicle), members = test_drives[drive]
    model = load_checkpoint(weights / "scene_graph.pt")
    with torch.inference_mode():
        out = model(bench.images(np.array(members), model.image_cfg))
    tracker = VehicleTracker()
    start = bench.truth[members[0]].captured_at
    click.echo(f"drive {drive}: vehicle {vehicle}, episode {episode}, {len(members)} frames")
    for j, i in enumerate(members):
        truth = bench.truth[i]
        speed, heading = ego_motion(bench.st_context[i])
        boxes, labels, facing = detected(out, j)
        positions = object_positions(truth.camera, boxes, labels)
        tracked = tracker.update(truth.captured_at, positions, labels, speed, heading, facing)
        if j % every:
            continue
        elapsed = (truth.captured_at - start).total_seconds()
        gps = "no GPS fix" if speed is None else f"GPS {speed * 3.6:.0f} km/h"
        click.echo(f"\n{truth.frame_id}  t+{elapsed:.0f}s  {gps} (true {truth.ego.speed_mps * 3.6:.0f} km/h)")
        for question, lines in answers(tracked, tracker.travelled_m, elapsed).items():
            for line in lines:
                click.echo(f"  {question:20s} {line}")
