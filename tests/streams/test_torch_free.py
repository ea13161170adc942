"""The streaming worker never imports torch: inference happens in Triton (STYLE.md, point 5).

import-linter's forbidden contract (`lint-imports`) checks the import graph; this checks a real process:
a fresh interpreter loads what `fleetscope worker` loads and builds the app with every agent registered.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "open_clip", "torchvision")

BUILD_THE_WORKER = f"""
import json, sys
import fleetscope.cli  # what `python -m fleetscope worker` imports before it runs the worker
from core.settings import load_settings
from streams.app import create_app
from streams.worker import run_worker
create_app(load_settings())  # agents, tables, rules and the road network; nothing connects
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""


def test_the_worker_process_loads_no_torch_open_clip_or_torchvision() -> None:
    done = subprocess.run([sys.executable, "-c", BUILD_THE_WORKER], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
