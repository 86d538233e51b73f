"""``sensorhub bench accuracy --sim``: knee angles of ``sensorhub analyze`` on the simulator population.

Recordings come from the population's **test** seeds (``firmware_sim.population``; the tuning seeds are
for development and are never reported): every family, bodies, landing styles, sensor sites and
mountings up to 45 deg, rates 100-800 Hz, IMU front-ends, loggers with jittered and batched time, loss
bursts. Each is analysed as a user's CSV would be (``sensorhub.bench.population_runs``) and compared
with the truth at the samples' true instants:

- RMSE per angle over the samples the logger delivered (a lost sample's angle is the estimator's bridge
  over what was never transmitted; the RMSE over every sample is printed alongside);
- flexion RMSE in -100..+400 ms around every true landing (impact and absorption);
- the 10-minute mixed session (``mixed`` family): RMSE of the first and of the last minute;
- the lag (within +-30 ms) that would minimise the flexion RMSE: the sensor's own output delay (its
  low-pass filter and sampling) shows there, since the estimator cannot know it.
Bounds: flexion and valgus <= 2 deg, rotation <= 4 deg per recording; <= 3 deg flexion around landings.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from sensorhub.bench.population_runs import RecordingRun, plan, run_population
from sensorhub.errors import SensorhubError
from sensorhub.model import FloatArray

BOUNDS_RMSE_DEG = (2.0, 2.0, 4.0)  # flexion, valgus, rotation
LANDING_WINDOW_S = (-0.1, 0.4)
LANDING_BOUND_DEG = 3.0
DRIFT_TOLERANCE_DEG = 0.25
LAG_SEARCH_S = 0.03


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broad", type=str, default=None, help="BROAD dataset directory (.npz trials)")
    p.add_argument("--per-trial", action="store_true", help="print every BROAD trial")
    p.add_argument("--sim", action="store_true", help="knee angles vs the simulator population's truth")
    p.add_argument("--split", choices=("test", "tuning"), default="test",
                   help="--sim: population seeds (figures are reported on the test split)")
    p.add_argument("--per-family", type=int, default=3, help="--sim: recordings per family")
    p.add_argument("--quick", action="store_true", help="--sim: one recording per family")
    p.add_argument("--workers", type=int, default=None, help="--sim: processes (default: one per core)")


def rmse(err: FloatArray) -> FloatArray:
    return np.asarray(np.sqrt(np.nanmean(err**2, axis=0)) if err.size else np.full(3, np.nan))


def recording_rmse(run: RecordingRun) -> tuple[FloatArray, FloatArray]:
    """(RMSE over delivered samples, RMSE over every sample), (3,) each."""
    assert run.est_deg is not None
    err = run.est_deg - run.truth_deg
    return rmse(err[run.received]), rmse(err)


def landing_window_rmse(run: RecordingRun) -> float:
    """Flexion RMSE over the delivered samples within the landing windows of the recording (NaN: none)."""
    assert run.est_deg is not None
    inside = np.zeros(run.true_t_s.shape[0], dtype=bool)
    for e in run.truth_events:
        if e["type"] == "landing":
            inside |= (run.true_t_s >= e["t_s"] + LANDING_WINDOW_S[0]) & (
                run.true_t_s <= e["t_s"] + LANDING_WINDOW_S[1])
    inside &= run.received
    if not inside.any():
        return float("nan")
    return float(rmse((run.est_deg[:, 0] - run.truth_deg[:, 0])[inside, None])[0])


def best_lag(run: RecordingRun) -> tuple[float, float]:
    """(lag s, flexion RMSE) of the constant time shift of the estimate that fits the truth best."""
    assert run.est_deg is not None
    t, m = run.true_t_s, run.received
    best = (0.0, float("inf"))
    for lag in np.arange(-LAG_SEARCH_S, LAG_SEARCH_S + 1e-9, 0.0025):
        y = np.interp(t + lag, t, run.est_deg[:, 0])
        e = float(np.sqrt(np.nanmean((y[m] - run.truth_deg[m, 0]) ** 2)))
        if e < best[1]:
            best = (float(lag), e)
    return best


def minute_rmse(run: RecordingRun) -> tuple[FloatArray, FloatArray]:
    """RMSE of the first and of the last minute (delivered samples)."""
    assert run.est_deg is not None
    t = run.true_t_s
    err = run.est_deg - run.truth_deg
    first = (t < t[0] + 60.0) & run.received
    last = (t > t[-1] - 60.0) & run.received
    return rmse(err[first]), rmse(err[last])


def run(args: argparse.Namespace) -> int:
    """``sensorhub bench accuracy``: BROAD (real data) and/or the simulator population."""
    if args.broad is None and not args.sim:
        raise SensorhubError("bench accuracy: give --broad DIR (real data) and/or --sim (simulator)")
    code = 0
    if args.broad is not None:
        from sensorhub.bench.broad_bench import run_broad

        code |= run_broad(Path(args.broad), args.per_trial)
    if args.sim:
        code |= run_sim(args)
    return code


def run_sim(args: argparse.Namespace) -> int:
    """Print the tables; 0 when every bound holds on every recording."""
    per_family = 1 if args.quick else max(1, args.per_family)
    pairs = plan(args.split, per_family)
    t0 = time.perf_counter()
    print(f"knee angles vs the simulator population's truth: {args.split} split, {per_family} "
          f"recording(s) per family ({len(pairs)} recordings), analysed as a user's CSV")
    print(f"bounds per recording: RMSE flexion <= {BOUNDS_RMSE_DEG[0]}, valgus <= {BOUNDS_RMSE_DEG[1]}, "
          f"rotation <= {BOUNDS_RMSE_DEG[2]} deg (delivered samples); flexion <= {LANDING_BOUND_DEG} deg in "
          f"{LANDING_WINDOW_S[0] * 1e3:+.0f}..{LANDING_WINDOW_S[1] * 1e3:+.0f} ms around landings")
    print(f"{'recording':<20} {'flex':>5} {'valg':>5} {'rot':>5}  {'all rows':>17}  {'landing':>7}  "
          f"{'lag ms':>6} {'flex@lag':>8}  setup")
    ok = True
    by_family: dict[str, list[FloatArray]] = defaultdict(list)
    landing: list[float] = []
    refused: list[str] = []
    for r in run_population(pairs, args.workers):
        if r.est_deg is None:
            ok = False
            refused.append(f"{r.name}: {r.refused}")
            print(f"{r.name:<20} REFUSED: {r.refused}   ({r.describe})")
            continue
        recv, every = recording_rmse(r)
        lw = landing_window_rmse(r)
        lag_s, lag_rmse = best_lag(r)
        within = bool(np.all(recv <= BOUNDS_RMSE_DEG)) and not lw > LANDING_BOUND_DEG
        ok &= within
        by_family[r.family].append(recv)
        if np.isfinite(lw):
            landing.append(lw)
        lw_txt = f"{lw:7.2f}" if np.isfinite(lw) else "      -"
        print(f"{r.name:<20} {recv[0]:5.2f} {recv[1]:5.2f} {recv[2]:5.2f}  "
              f"{every[0]:5.2f} {every[1]:5.2f} {every[2]:5.2f}  {lw_txt}  "
              f"{lag_s * 1e3:+6.1f} {lag_rmse:8.2f}  "
              f"{r.describe}{'' if within else '   OVER BOUND'}")
        if r.family == "mixed":
            first, last = minute_rmse(r)
            held = bool(np.all(last <= np.maximum(first, BOUNDS_RMSE_DEG) + DRIFT_TOLERANCE_DEG))
            ok &= held
            print(f"  {r.true_t_s[-1] - r.true_t_s[0]:.0f} s session: first minute "
                  f"{first[0]:.2f}/{first[1]:.2f}/{first[2]:.2f}, last minute "
                  f"{last[0]:.2f}/{last[1]:.2f}/{last[2]:.2f} deg -> "
                  + ("no drift" if held else "DRIFT"))
    print("per family (worst recording): flex / valg / rot")
    for fam, rows in by_family.items():
        w = np.max(np.array(rows), axis=0)
        print(f"  {fam:<12} {w[0]:5.2f} {w[1]:5.2f} {w[2]:5.2f}  ({len(rows)} recordings)")
    if by_family:
        allr = np.array([x for rows in by_family.values() for x in rows])
        print(f"all {allr.shape[0]} recordings: median {np.median(allr[:, 0]):.2f}/"
              f"{np.median(allr[:, 1]):.2f}/{np.median(allr[:, 2]):.2f}, worst "
              f"{allr[:, 0].max():.2f}/{allr[:, 1].max():.2f}/{allr[:, 2].max():.2f} deg; within bounds: "
              f"{int(np.sum(np.all(allr <= BOUNDS_RMSE_DEG, axis=1)))}/{allr.shape[0]}")
    if landing:
        print(f"landing windows: median {np.median(landing):.2f}, worst {max(landing):.2f} deg flexion RMSE "
              f"({len(landing)} recordings with landings)")
    if refused:
        print(f"refused by analyze: {len(refused)}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0 if ok else 1
