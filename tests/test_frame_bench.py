"""`fleetscope bench frames` on a small fleet: every phase runs to the end on the real stack, and its
figures come from frames the phase served (synthetic frames; no speed target is asserted here, the
machine is shared: the figures and their targets are in docs/benchmarks.md)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

MODELS = {"st_clip", "sa_clip", "scene_graph"}


def run_bench(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """``fleetscope bench frames ARGS``; past ``timeout_s`` it gets Ctrl-C, so that it stops the stack it
    started (a SIGKILL would leave the broker, PostgreSQL and Triton running)."""
    cmd = [sys.executable, "-m", "fleetscope", "bench", "frames", *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=90)
            raise AssertionError(f"bench frames still running after {timeout_s:g}s: {err[-3000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_bench_frames_runs_all_four_phases_and_reports_what_each_served():
    args = ["--vehicles", "2", "--duration", "30", "--naive-frames", "10", "--latency-s", "4", "--timeout", "60"]
    out = run_bench([*args, "--json"], timeout_s=420)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])

    assert result["frames"] == 30 and result["synthetic"]  # two vehicles, a frame every 2 s each
    rates = [result[k] for k in ("model_only_frames_per_s", "pipeline_frames_per_s", "naive_frames_per_s")]
    assert all(r > 0 for r in rates)
    # (a0): the same models on a second Triton with eager torch, the way they were served before.
    assert result["runtime"] == "onnxruntime" and result["baseline"]["triton"] == {"runtime": "torch"}
    assert result["baseline"]["model_only_frames_per_s"] > 0
    assert abs(result["ratio_pipeline_to_model_only"] - rates[1] / rates[0]) < 0.01  # rates are rounded
    # During (b) Triton ran each model on the worker's batches: its own counters give the time per request.
    stages = result["triton_in_pipeline"]
    assert set(stages) == MODELS and all(s["compute_ms_per_request"] > 0 for s in stages.values())
    assert all(1 <= s["frames_per_execution"] <= 16 for s in stages.values())  # max_batch_size 16
    # Triton did the inference work of each phase; the worker took part only in the pipeline.
    cpu = result["cpu_ms_per_frame"]
    assert cpu["model_only"]["triton"] > 0 and cpu["pipeline"]["triton"] > 0 and cpu["naive"]["triton"] > 0
    assert cpu["pipeline"]["worker"] > cpu["model_only"]["worker"]
    # (d): every paced frame's scene came back, with a latency between its produce time and the end.
    latency = result["latency"]
    assert latency["frames"] > 0 and 0 < latency["p50_s"] <= latency["p99_s"] <= latency["max_s"]


def test_bench_frames_names_a_baseline_setting_that_does_not_exist_before_starting_anything():
    out = run_bench(["--vehicles", "1", "--duration", "4", "--baseline", "runtim=torch"], timeout_s=120)
    assert out.returncode == 2 and "runtim: not a setting of the Triton server" in out.stderr
