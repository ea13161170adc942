"""Which simulated worlds play which part: the evaluation protocol's seeds, in one place.

A figure fleetscope reports comes from a world that played no part in training, in choosing a
configuration or in tuning a threshold. Worlds differ by seed (and so by dates, hours, weather,
traffic and incidents); within the benchmark, splits are whole episodes (``sim.export``).

Until 2026-12-02 the benchmark was seed 7, where configurations (ST-CLIP's visual tokens, the
kinematics' track confirmation and velocity window) and alert thresholds were chosen; its worlds are
development history now, and the benchmark and alert worlds are seeds no earlier choice looked at.
"""

from __future__ import annotations

CORPUS = 101  # base CLIP, SA-CLIP and the scene graph train on its train and val splits
BENCHMARK = 41  # ST-CLIP's shots come from its train split, configuration choices from val, figures from test
ALERT_TUNING = BENCHMARK  # alert-rule thresholds are chosen on a replay of the benchmark's train and val
ALERT_HELD_OUT = (43, 47)  # alert figures are reported on these worlds, never used to train or tune
DEMO = 23  # the world `fleetscope demo` simulates by default; `demo --evaluate` reports on it

TRAINING = (CORPUS, BENCHMARK)
TUNING = (ALERT_TUNING,)
