"""``fleetscope bench models``: what each served model costs in Triton, for checkpoint folders side by side.

One embedded ``tritonserver`` per folder, all running at once on ports of their own and serving the
same ``triton_repo/`` with that folder's checkpoints (a model the folder lacks gets the shipped
one). The same benchmark frames (JPEGs of the benchmark's test episodes, synthetic) are sent one
request at a time, each round alternating the servers, so that a slow moment of this shared
machine falls on every folder alike; the figures are request latencies as the worker sees them
(gRPC, JPEG decoding in the model included) and their ratio to the first folder.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
import numpy as np

MODELS = ("st_clip", "sa_clip", "scene_graph")


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


@click.command("models")
@click.option(
    "--weights",
    "folders",
    multiple=True,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="folder of checkpoints (st_clip.pt, base_clip.pt, sa_clip.pt, scene_graph.pt; missing ones are the"
    " shipped); repeat it to compare, the first is the reference",
)
@click.option(
    "--runtime",
    "runtimes",
    multiple=True,
    type=click.Choice(["torch", "onnxruntime"]),
    help="what runs the models in Triton (triton.runtime; default: as configured); repeat it to compare,"
    " each folder under each",
)
@click.option("--batch", "batches", multiple=True, type=int, default=(1, 8), show_default=True, help="batch sizes")
@click.option("--requests", default=30, show_default=True, help="timed requests per model, batch size and folder")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of the table")
def bench_models(
    folders: tuple[Path, ...], runtimes: tuple[str, ...], batches: tuple[int, ...], requests: int, as_json: bool
) -> None:
    """Triton latency per model at each batch size, for each checkpoint folder and runtime, side by side.

    Starts one tritonserver per folder and runtime under var/bench-models (logs there) and stops them
    at the end.
    """
    import tritonclient.grpc as grpcclient

    from core.settings import REPO_ROOT, load_settings
    from infra.process import free_ports
    from infra.stack import terminate_as_interrupt
    from infra.triton import EmbeddedTriton
    from models.vocab import ST_CONTEXT_DIM
    from streams.inference.triton_client import SA_CLIP_OUTPUTS, SCENE_GRAPH_OUTPUTS, ST_CLIP_OUTPUTS
    from training.dataset import BENCHMARK, ensure_export

    outputs = {"st_clip": ST_CLIP_OUTPUTS, "sa_clip": SA_CLIP_OUTPUTS, "scene_graph": SCENE_GRAPH_OUTPUTS}
    root = ensure_export(BENCHMARK)
    with (root / "frames.jsonl").open() as f:
        test = [json.loads(line) for line in f]
    jpegs = [(root / t["image"]).read_bytes() for t in test if t["split"] == "test"][: max(batches) * 4]

    runtimes = runtimes or (load_settings().triton.runtime,)
    servers: list[tuple[str, Any]] = []
    with ExitStack() as stack, terminate_as_interrupt():
        for n, (folder, runtime) in enumerate((f, r) for f in folders for r in runtimes):
            label = f"{folder} ({runtime})"
            run_dir = REPO_ROOT / "var" / "bench-models" / str(n)
            checkpoints = run_dir / "checkpoints"
            shutil.rmtree(checkpoints, ignore_errors=True)
            checkpoints.mkdir(parents=True)
            for pt in folder.glob("*.pt"):
                shutil.copyfile(pt, checkpoints / pt.name)
            http, grpc, metrics = free_ports(3)
            settings = load_settings(
                triton={
                    "embedded_http_port": http,
                    "embedded_grpc_port": grpc,
                    "embedded_metrics_port": metrics,
                    "checkpoint_dir": checkpoints,
                    "runtime": runtime,
                },
                stack={"run_dir": run_dir},
            )
            click.echo(f"starting tritonserver for {label} (log {run_dir / 'logs' / 'triton.log'}) ...", err=True)
            triton = EmbeddedTriton(settings)
            stack.callback(triton.stop)
            triton.start()
            servers.append((label, grpcclient.InferenceServerClient(f"127.0.0.1:{grpc}")))

        def request(client: Any, model: str, batch: int, offset: int) -> float:
            picked = [jpegs[(offset + i) % len(jpegs)] for i in range(batch)]
            inputs = [grpcclient.InferInput("IMAGE_JPEG", [batch, 1], "BYTES")]
            inputs[0].set_data_from_numpy(np.array([[j] for j in picked], dtype=np.object_))
            if model == "st_clip":
                inputs.append(grpcclient.InferInput("ST_CONTEXT", [batch, ST_CONTEXT_DIM], "FP32"))
                inputs[1].set_data_from_numpy(np.zeros((batch, ST_CONTEXT_DIM), dtype=np.float32))
            wanted = [grpcclient.InferRequestedOutput(o) for o in outputs[model]]
            t0 = time.perf_counter()
            client.infer(model, inputs, outputs=wanted, client_timeout=60)
            return time.perf_counter() - t0

        rows = []
        for model in MODELS:
            for batch in batches:
                times: dict[str, list[float]] = {label: [] for label, _ in servers}
                for r in range(-3, requests):  # three untimed warm-up rounds
                    order = servers if r % 2 == 0 else servers[::-1]
                    for label, client in order:
                        took = request(client, model, batch, r * batch)
                        if r >= 0:
                            times[label].append(took)
                ref = float(np.median(times[servers[0][0]]))
                for label, _ in servers:
                    median = float(np.median(times[label]))
                    rows.append(
                        {
                            "model": model,
                            "batch": batch,
                            "folder": label,
                            "median_ms": round(1000 * median, 1),
                            "p90_ms": round(1000 * _percentile(times[label], 90), 1),
                            "frames_per_s": round(batch / median, 1),
                            "ratio_to_first": round(median / ref, 2),
                        }
                    )
                click.echo(f"{model} at batch {batch}: {requests} requests per server done", err=True)
    if as_json:
        click.echo(json.dumps({"requests": requests, "rows": rows}))
        return
    lines = [
        f"Triton latency per request (gRPC, JPEG decoding included; {requests} requests each, benchmark frames,"
        " synthetic; one request at a time, servers alternating)",
        "",
        "| model | batch | server (checkpoints, runtime) | median ms | p90 ms | frames/s | median / first server's |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['batch']} | {row['folder']} | {row['median_ms']} | {row['p90_ms']} |"
            f" {row['frames_per_s']} | {row['ratio_to_first']} |"
        )
    click.echo("\n".join(lines))
