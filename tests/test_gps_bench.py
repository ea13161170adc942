"""`fleetscope bench gps` on a small fleet: it runs to the end and its figures come from fixes the worker took."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_gps_drains_a_small_fleet_and_reports_rates_with_no_fix_dead_lettered():
    cmd = [sys.executable, "-m", "fleetscope", "bench", "gps", "--vehicles", "100", "--duration", "200"]
    out = subprocess.run([*cmd, "--timeout", "120", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["fixes"] >= 100 * 180 and result["dead_letters"] == {}
    # Timed over most of the drain, at a rate far above the fleet's 100 fixes/s (the target is 5,000).
    assert result["fixes_timed"] >= result["fixes"] / 2
    assert result["worker_with_segment_windows_fixes_per_s"] > 500
