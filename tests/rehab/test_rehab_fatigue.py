"""Fatigue within a set: drifting control metrics are flagged (live and for a finished set); a steady
set, a noisy one and a single bad rep are not. Real analysis of simulated sets plus synthetic series."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import theilslopes

from firmware_sim.athletes import make_leg_csv_arrays
from sensorhub.analysis import detect_events
from sensorhub.kinematics import estimate_knee
from sensorhub.model import Event, LegSamples
from sensorhub.rehab.fatigue import FatigueMonitor, assess_set, theil_sen_slope

RATE_HZ = 200.0


def _squats(reps: int, seed: int, faults: dict[str, float]) -> list[Event]:
    """A squat set through the offline analysis (calibration bends dropped)."""
    leg = make_leg_csv_arrays("squat", "right", seed=seed, errors="realistic", reps=reps, faults=faults)
    d = leg.data
    samples = LegSamples(
        "ana/right",
        leg.t_s,
        np.ascontiguousarray(d[:, 0:3]),
        np.ascontiguousarray(d[:, 3:6]),
        np.ascontiguousarray(d[:, 6:9]),
        np.ascontiguousarray(d[:, 9:12]),
    )
    run = estimate_knee(samples, "right", RATE_HZ)
    first_s = min(e["t_s"] for e in leg.motion.events if not e.get("calibration"))
    return [e for e in detect_events(run.angles, run.motion, "right", RATE_HZ) if e.t_s >= first_s - 0.5]


def _reps(valgus: list[float], eccentric: list[float] | None = None) -> list[Event]:
    ecc = eccentric or [1.8] * len(valgus)
    return [
        Event("rep", "ana/right", float(i), {"peak_valgus_deg": v, "eccentric_s": e})
        for i, (v, e) in enumerate(zip(valgus, ecc, strict=True))
    ]


def test_theil_sen_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    for n in (2, 5, 12):
        y = rng.normal(size=n) + 0.3 * np.arange(n)
        assert theil_sen_slope(y) == pytest.approx(theilslopes(y).slope)


def test_steady_simulated_sets_are_not_flagged() -> None:
    for seed in (1, 2, 3):
        events = _squats(9, seed, {})
        assert len(events) >= 8
        status = assess_set(events)
        assert status.findings, "enough reps were checked"
        assert not status.flagged, status.reasons


def test_simulated_set_that_degrades_is_flagged_live_once_the_drift_shows() -> None:
    """Clean reps, then reps with valgus and a fast lowering (the simulator's faults): the real analysis'
    metrics drift and the live monitor raises the flag in the second half of the set, not before."""
    events = _squats(5, 7, {})[:5] + _squats(5, 8, {"valgus": 1.0, "fast_eccentric": 1.0})[:5]
    monitor = FatigueMonitor()
    flags = [monitor.push(e).flagged for e in events]
    assert not any(flags[:5])
    assert flags[-1]
    reasons = " ".join(monitor.status.reasons)
    assert "valgus rising" in reasons and "lowering getting faster" in reasons
    assert assess_set(events).reasons == monitor.status.reasons  # finished set == live


def test_synthetic_rules_both_directions() -> None:
    rising = _reps([1.0, 1.5, 1.2, 2.0, 2.8, 3.5, 4.2, 4.8, 5.5])
    status = assess_set(rising)
    [valgus] = [f for f in status.findings if f.metric == "peak_valgus_deg"]
    assert valgus.flagged and valgus.trend_change >= 3.0 and valgus.last_third_mean > valgus.first_third_mean
    # improving (valgus falling) is not fatigue
    assert not assess_set(_reps(list(reversed([1.0, 1.5, 1.2, 2.0, 2.8, 3.5, 4.2, 4.8, 5.5])))).flagged
    # one bad rep at the end of a flat set: the robust trend stays flat
    assert not assess_set(_reps([2.0, 2.5, 1.8, 2.2, 2.4, 1.9, 2.1, 2.3, 12.0])).flagged
    # a noisy flat set
    noisy = list(np.random.default_rng(0).uniform(0.0, 4.0, size=12))
    assert not assess_set(_reps(noisy)).flagged
    # a drift smaller than the minimum effect (2 deg over the set)
    assert not assess_set(_reps([1.0 + 0.25 * i for i in range(9)])).flagged
    # too few reps to judge: no finding at all
    assert assess_set(_reps([1.0, 3.0, 6.0, 9.0, 12.0])).findings == ()
    # eccentric time falling by 0.8 s is flagged
    ecc = [2.2, 2.1, 2.2, 2.0, 1.8, 1.7, 1.5, 1.4, 1.3]
    assert assess_set(_reps([2.0] * 9, ecc)).reasons[0].startswith("ana/right rep: lowering getting faster")


def test_legs_are_judged_separately_and_reset_clears() -> None:
    right = _reps([1.0, 1.5, 1.2, 2.0, 2.8, 3.5, 4.2, 4.8, 5.5])
    left = [Event("rep", "ana/left", e.t_s, {"peak_valgus_deg": 2.0, "eccentric_s": 1.8}) for e in right]
    interleaved = [e for pair in zip(right, left, strict=True) for e in pair]
    monitor = FatigueMonitor()
    for e in interleaved:
        status = monitor.push(e)
    assert status.flagged and all(r.startswith("ana/right") for r in status.reasons)
    monitor.reset()
    assert not monitor.status.flagged and monitor.status.findings == ()
