"""Event detection accuracy against the simulator's ground truth, per drill, clean and realistic sensors.

For every drill: one simulated recording per error preset (random mounts, realistic errors, a typical
BLE link losing packets), knee angles from the streaming estimator, events from the streaming detector.
A detected event matches a true event of the same type within ``MATCH_S`` of its time; F1 per type;
metric errors (detected - true) over matched events.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensorhub.errors import CalibrationError
from sensorhub.model import Event, FloatArray, KneeAngles, LegSamples

MATCH_S = {"landing": 0.1, "cut": 0.2, "rep": 0.4}
ERROR_METRICS = (
    "flexion_at_contact_deg",
    "peak_flexion_deg",
    "flight_time_s",
    "peak_valgus_deg",
    "depth_deg",
    "flexion_at_plant_deg",
    "direction_change_deg",
    "ground_contact_time_s",
    "eccentric_s",
)
FAULTS = {"valgus": 0.3, "stiff_landing": 0.3, "fast_eccentric": 0.3}


@dataclass(slots=True)
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 1.0 if d == 0 else 2 * self.tp / d


@dataclass(slots=True)
class Result:
    tallies: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in MATCH_S})
    errors: dict[str, list[float]] = field(default_factory=dict)
    timing_s: dict[str, list[float]] = field(default_factory=dict)  # detected - true t_s per type
    false_in: dict[str, int] = field(default_factory=dict)  # false positives per drill
    missed_in: dict[str, int] = field(default_factory=dict)  # false negatives per drill
    matched: list[tuple[dict[str, Any], Event]] = field(default_factory=list)
    calibration_failed: list[str] = field(default_factory=list)


def simulate_leg(
    drill: str,
    errors: str,
    seed: int,
    reps: int = 5,
    side: str = "right",
    faults: dict[str, float] | None = None,
) -> tuple[Any, LegSamples, float]:
    """(firmware_sim arrays with truth, LegSamples, rate_hz) of one simulated leg."""
    from firmware_sim import make_leg_csv_arrays

    arr = make_leg_csv_arrays(
        drill, side, seed=seed, errors=errors, reps=reps, faults=FAULTS if faults is None else faults
    )
    d = arr.data
    samples = LegSamples(
        side, arr.t_s, d[:, 0:3].copy(), d[:, 3:6].copy(), d[:, 6:9].copy(), d[:, 9:12].copy()
    )
    return arr, samples, 200.0


def detect_leg(
    samples: LegSamples, side: str, rate_hz: float, chunk: int = 0, truth_deg: FloatArray | None = None
) -> list[Event]:
    """Knee angles then events, in one batch (chunk=0) or fed ``chunk`` samples at a time. With
    ``truth_deg`` (N, 3) the true knee angles replace the estimator's (tests of the detector alone; the
    segment kinematics still come from the estimator)."""
    from sensorhub.analysis import EventDetector
    from sensorhub.kinematics import KneeEstimator

    knee = KneeEstimator(side, rate_hz, samples.leg_id)
    det = EventDetector(side, rate_hz, samples.leg_id)
    n = len(samples)
    step = n if chunk <= 0 else chunk
    events: list[Event] = []
    for i in range(0, n + 1, step):
        if i < n:
            angles, motion = knee.step(samples.slice(slice(i, i + step)))
        else:
            angles, motion = knee.finish_step()
        if truth_deg is not None:
            angles = _truth_rows(angles, samples, truth_deg)
        events += det.push(angles, motion)
    events += det.finish()
    return events


def _truth_rows(angles: KneeAngles, samples: LegSamples, truth_deg: FloatArray) -> KneeAngles:
    """The simulator's true knee angles for the rows the estimator returned."""
    rows = np.searchsorted(samples.t_s, angles.t_s)
    r = np.radians(truth_deg[rows])
    return KneeAngles(angles.leg_id, angles.t_s, r[:, 0].copy(), r[:, 1].copy(), r[:, 2].copy(),
                      np.zeros(rows.shape[0], dtype=np.uint8))


def match(truth: Sequence[dict[str, Any]], events: Sequence[Event], res: Result, drill: str) -> None:
    """Tally ``events`` against ``truth`` (one recording of ``drill``, the family or drill name)."""
    for kind, tol in MATCH_S.items():
        tr = [e for e in truth if e["type"] == kind]
        det = [e for e in events if e.type == kind]
        used: set[int] = set()
        for te in tr:
            best, best_d = -1, tol
            for j, de in enumerate(det):
                dd = abs(de.t_s - te["t_s"])
                if j not in used and dd <= best_d:
                    best, best_d = j, dd
            if best < 0:
                res.tallies[kind].fn += 1
                res.missed_in[f"{drill}/{kind}"] = res.missed_in.get(f"{drill}/{kind}", 0) + 1
                continue
            used.add(best)
            res.tallies[kind].tp += 1
            de = det[best]
            res.matched.append((te, de))
            res.timing_s.setdefault(kind, []).append(de.t_s - te["t_s"])
            for m in ERROR_METRICS:
                tv, dv = te.get(m), de.metrics.get(m)
                if tv is not None and dv is not None and math.isfinite(dv):
                    res.errors.setdefault(f"{kind}.{m}", []).append(dv - tv)
        fp = len(det) - len(used)
        res.tallies[kind].fp += fp
        if fp:
            res.false_in[f"{drill}/{kind}"] = res.false_in.get(f"{drill}/{kind}", 0) + fp


def evaluate(drills: Sequence[str], presets: Sequence[str], seeds: Sequence[int], reps: int = 5) -> Result:
    res = Result()
    for drill in drills:
        for preset in presets:
            for seed in seeds:
                arr, samples, rate = simulate_leg(drill, preset, seed, reps)
                try:
                    events = detect_leg(samples, "right", rate)
                except CalibrationError:
                    res.calibration_failed.append(f"{drill}/{preset}/seed {seed}")
                    events = []  # every true event of the recording counts as missed

                match(arr.motion.events, events, res, drill)
    return res


def summary_lines(res: Result) -> list[str]:
    lines = ["type      TP   FP   FN    F1"]
    for kind, t in res.tallies.items():
        lines.append(f"{kind:8s} {t.tp:4d} {t.fp:4d} {t.fn:4d}  {t.f1:.3f}")
    for kind, vals in res.timing_s.items():
        ce = np.array(vals) * 1e3
        lines.append(
            f"{TIMING_KEYS[kind]} error: median |err| {np.median(np.abs(ce)):.1f} ms, p90 "
            f"{np.percentile(np.abs(ce), 90):.1f} ms, median {np.median(ce):+.1f} ms (detected - true)"
        )
    lines.append("metric                                   n       MAE  median|err|  p90|err|  mean err")
    for name, vals in sorted(res.errors.items()):
        v = np.array(vals)
        lines.append(
            f"{name:40s} {v.size:3d} {np.mean(np.abs(v)):9.3f}   {np.median(np.abs(v)):9.3f} "
            f"{np.percentile(np.abs(v), 90):9.3f} {np.mean(v):+9.3f}"
        )
    if res.calibration_failed:
        lines.append(
            "analyze refused (events counted as missed): " + "; ".join(res.calibration_failed)
        )
    if res.false_in:
        lines.append("false positives: " + ", ".join(f"{k}: {v}" for k, v in sorted(res.false_in.items())))
    if res.missed_in:
        lines.append("missed: " + ", ".join(f"{k}: {v}" for k, v in sorted(res.missed_in.items())))
    return lines


EXPECTED_PHRASE = {"valgus": "knees out", "stiff_landing": "softer landing", "fast_eccentric": "slower"}
FAULTS_SHOWN = {
    "landing": ("valgus", "stiff_landing"),
    "rep": ("valgus", "fast_eccentric"),
    "cut": ("valgus",),
}
"""The simulator draws every fault for every event; only these change the motion of each event type."""


@dataclass(slots=True)
class CueTally:
    faulty: int = 0
    faulty_right: int = 0
    good: int = 0
    good_cued: int = 0
    misses: list[str] = field(default_factory=list)


def evaluate_cues(res: Result) -> CueTally:
    """The default cue rules on every matched drill event (not the calibration bends): the right phrase for
    a faulty one (any of its faults' phrases), none for a good one. A fresh engine per event, so cooldowns
    and the one-at-a-time rule do not hide a decision."""
    from sensorhub.cues import DEFAULT_RULES, CueEngine, parse_rules

    rules = parse_rules(DEFAULT_RULES, "<defaults>")
    tally = CueTally()
    for truth, event in res.matched:
        if truth.get("calibration"):
            continue
        cue = CueEngine(rules).on_event(event)
        faults = [f for f in truth.get("faults") or [] if f in FAULTS_SHOWN[event.type]]
        if faults:
            tally.faulty += 1
            right = cue is not None and cue.phrase in {EXPECTED_PHRASE[f] for f in faults}
            tally.faulty_right += int(right)
            if not right:
                tally.misses.append(
                    f"{truth.get('exercise')} {truth['t_s']:.2f} {'+'.join(faults)}: "
                    f"{cue.phrase if cue else 'no cue'}"
                )
        else:
            tally.good += 1
            tally.good_cued += int(cue is not None)
            if cue is not None:
                tally.misses.append(f"{truth.get('exercise')} {truth['t_s']:.2f} good: {cue.phrase}")
    return tally


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", choices=("test", "tuning"), default="test",
                   help="population seeds (figures are reported on the test split)")
    p.add_argument("--per-family", type=int, default=3, help="recordings per family")
    p.add_argument("--quick", action="store_true", help="one recording per family")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")


TIMING_KEYS = {"landing": "landing contact", "cut": "cut plant", "rep": "rep onset"}


def run(args: argparse.Namespace) -> int:
    """Detection on the simulator population (``sensorhub.bench.population_runs``): F1 per type, timing
    of contact / plant / onset, metric errors, cues. 0 when the targets hold: F1 >= 0.98 per type,
    landing and cut timing median <= 10 ms, flight and ground contact time MAE <= 20 ms, rep onset median
    <= 50 ms."""
    from sensorhub.bench.population_runs import plan, run_population

    per_family = 1 if args.quick else max(1, args.per_family)
    pairs = plan(args.split, per_family)
    t0 = time.perf_counter()
    print(f"events vs the simulator population's truth: {args.split} split, {per_family} recording(s) per "
          f"family ({len(pairs)} recordings), analysed as a user's CSV; match within "
          + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in MATCH_S.items()))
    res = Result()
    for r in run_population(pairs, args.workers):
        if r.refused is not None:
            res.calibration_failed.append(f"{r.name}: {r.refused}")
        match(r.truth_events, r.events, res, r.family)
    for line in summary_lines(res):
        print(line)
    cues = evaluate_cues(res)
    print(
        f"cues: right cue for {cues.faulty_right}/{cues.faulty} faulty events "
        f"({100.0 * cues.faulty_right / max(cues.faulty, 1):.1f} %), a cue for {cues.good_cued}/{cues.good} "
        f"good ones ({100.0 * cues.good_cued / max(cues.good, 1):.1f} %)"
    )
    ok = all(t.f1 >= 0.98 for t in res.tallies.values())
    checks = [(res.timing_s.get("landing", []), 0.010, "median"),
              (res.timing_s.get("cut", []), 0.010, "median"),
              (res.timing_s.get("rep", []), 0.050, "median"),
              (res.errors.get("landing.flight_time_s", []), 0.020, "mae"),
              (res.errors.get("landing.ground_contact_time_s", []), 0.020, "mae")]
    for values, bound, stat in checks:
        if values:
            v = np.abs(np.asarray(values))
            ok &= bool((np.median(v) if stat == "median" else np.mean(v)) <= bound)
    print(f"({time.perf_counter() - t0:.0f} s) targets " + ("met" if ok else "NOT met"))
    return 0 if ok else 1
