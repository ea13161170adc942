"""The embedded demo as a user runs it: every frame accounted for, alerts and road conditions produced."""

from __future__ import annotations

import json
import subprocess
import sys

from models.vocab import ANOMALY_TYPES
from tests.conftest import EVERY_FRAME_RULES, stack_settings


def test_demo_json_summary_accounts_for_every_frame(tmp_path):
    settings = stack_settings(tmp_path)
    env = settings.process_env()
    # The default checkpoint directory, as a user's demo has it (the shipped checkpoints installed).
    env.pop("FLEETSCOPE_TRITON__CHECKPOINT_DIR")
    # Whether 20 simulated seconds hold an incident the models catch is for `fleetscope eval`; here
    # every frame raises an alert, so the demo's alert output is checked whatever the models score.
    env["FLEETSCOPE_WORKER__ALERT_RULES"] = str(EVERY_FRAME_RULES)
    out = subprocess.run(
        [sys.executable, "-m", "fleetscope", "demo", "--json", "--evaluate", "--duration", "20", "--speed", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["complete"] is True
    assert summary["frames_processed"] == summary["frames_produced"] - summary["frame_dead_letters"]
    assert summary["dead_letter_reasons"] == {"corrupt_jpeg": 2, "not_json": 1, "invalid_lat": 1}
    assert summary["alerts"] >= 1 and set(summary["alert_types"]) <= set(ANOMALY_TYPES)
    assert summary["true_anomaly_frames"] >= 1, "the simulated minute contains incidents"
    assert summary["road_condition_rows"] >= 1
    # Frames are joined with their map-matched segment; GPS fills per-segment windows.
    assert summary["frames_on_segment"] >= summary["frames_processed"] / 2
    assert summary["segment_stats_rows"] >= 1
    assert summary["frames_per_s"] > 0 and 0 < summary["latency_p50_s"] <= summary["latency_p99_s"]
    # Scored against the simulator's truth: the same alerts and frames as the summary counts.
    scored = summary["evaluation"]
    assert sum(s["alerts"] for s in scored["alerts"].values()) == summary["alerts"]
    assert all(s["correct"] <= s["alerts"] and s["detected"] <= s["incidents"] for s in scored["alerts"].values())
    assert sum(s["incidents"] for s in scored["alerts"].values()) >= 1, "an incident in view of a processed frame"
    assert scored["conditions"]["frames"] == summary["frames_processed"]
    assert scored["conditions"]["rows"] >= 1
    assert all(0 <= a <= 1 for a in scored["conditions"]["frame_accuracy"].values())
