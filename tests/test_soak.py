"""The soak's figures from its readings (the run itself: `fleetscope bench soak --minutes 2`, minutes long)."""

from __future__ import annotations

import pytest

from fleetscope.soak import FLAT_BOUND, Sample, Soak, drift


def test_drift_is_last_quarter_median_minus_first_quarter_median():
    # 8 readings 10 s apart: quarters of two; a spike in the middle counts for the max only.
    mb = [100, 102, 101, 300, 103, 104, 106, 104]
    d = drift([(10.0 * i, float(m)) for i, m in enumerate(mb)])
    assert (d.start_mb, d.end_mb, d.max_mb) == (100, 104, 300)
    assert (d.first_quarter_mb, d.last_quarter_mb, d.drift_mb) == (101, 105, 4)
    # Quarters' median times 5 s and 65 s: 4 MB in 60 s is 240 MB/h.
    assert d.drift_mb_per_h == pytest.approx(240)
    assert d.drift_fraction == pytest.approx(4 / 101) and d.flat


def test_growth_beyond_the_bound_is_not_flat():
    points = [(60.0 * i, 1000.0 * (1 + FLAT_BOUND * 1.5 * i / 9)) for i in range(10)]
    assert not drift(points).flat
    with pytest.raises(ValueError):
        drift(points[:1])


def test_summary_uses_steady_readings_only():
    soak = Soak(minutes=1, vehicles=6, speed=5, sample_s=10, warmup_s=20)
    for i, phase in enumerate(["warm-up", "warm-up", "steady", "steady", "steady", "drain"]):
        worker = 5000.0 if phase == "warm-up" else 500.0
        soak.samples.append(Sample(10.0 * i, phase, worker, 900.0, 4, 15 * i, 10 * i, 0))
    figures = soak.figures()
    assert figures["worker"]["max_mb"] == 500 and figures["flat"] is True  # type: ignore[index]
    assert figures["steady_frames_per_s"] == 1.0 and figures["frames_processed"] == 50
    assert "RSS stayed flat" in soak.text() and "yes" in soak.text().splitlines()[-1]
