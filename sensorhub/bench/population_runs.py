"""Run ``sensorhub analyze`` on recordings of the firmware_sim population, for the accuracy benches.

Each recording is drawn from a seed of one split (``firmware_sim.population``: tuning seeds for
development, test seeds for every reported figure), simulated, written as the analyze CSV a logger
would write (jittered, batched time column; dropped samples), read back through the same functions as
``sensorhub analyze`` (time grid, calibration, knee angles, events) and compared with the truth at the
samples' true instants. Recordings run in worker processes (one per core); firmware_sim is imported only
here, never by the pipeline.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorhub.model import Event, FloatArray

SPLITS = ("test", "tuning")


@dataclass(slots=True)
class RecordingRun:
    """One population recording through analyze, with what the benches need of its truth."""

    family: str
    seed: int
    describe: str  # rate, side, sensor sites, calibration movement
    true_t_s: FloatArray  # (N,) true instant of every sample the sensor took
    truth_deg: FloatArray  # (N, 3) true knee angles at those instants
    received: np.ndarray  # (N,) bool: the logger delivered this sample
    truth_events: list[dict[str, Any]]
    curves: list[tuple[float, float, float]] = field(default_factory=list)  # jogging curves: start, end, deg
    est_deg: FloatArray | None = None  # (N, 3) analyze's angles at the true instants (None: refused)
    events: list[Event] = field(default_factory=list)
    refused: str | None = None  # analyze's error message
    calibration: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # simulation + analysis wall time

    @property
    def name(self) -> str:
        return f"{self.family}/{self.seed}"


def split_seeds(split: str) -> range:
    from firmware_sim.population import TEST_SEEDS, TUNING_SEEDS

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    return TEST_SEEDS if split == "test" else TUNING_SEEDS


def plan(split: str, per_family: int, families: Sequence[str] | None = None) -> list[tuple[str, int]]:
    """(family, seed) pairs: ``per_family`` seeds of ``split`` for each family, every recording its own
    seed (bodies, sensors and loggers differ across families too)."""
    from firmware_sim.population import FAMILIES

    fams = tuple(families) if families else FAMILIES
    seeds = split_seeds(split)
    return [(fam, seeds.start + k * len(FAMILIES) + FAMILIES.index(fam))
            for k in range(per_family) for fam in fams]


def run_recording(family: str, seed: int) -> RecordingRun:
    """Simulate, write the analyze CSV, analyze it, score against the truth."""
    from firmware_sim.population import draw_spec, simulate
    from sensorhub.errors import SensorhubError
    from sensorhub.offline.analyze import analyze_input, read_analyze_csv

    t0 = time.perf_counter()
    spec = draw_spec(seed, family)
    rec = simulate(spec)
    sites = "/".join(f"{s.segment} {s.site}" for s in spec.sites)
    describe = (f"{spec.logger.rate_hz:.0f} Hz {spec.side}, {sites}, "
                f"calibration {spec.calibration or 'own gait'}")
    run = RecordingRun(family, seed, describe, rec.true_t_s, rec.truth_deg,
                       np.all(np.isfinite(rec.data), axis=1), list(rec.events), list(rec.curves))
    with tempfile.TemporaryDirectory(prefix="sensorhub-population-") as tmp:
        path = rec.write(Path(tmp)) / "imu.csv"
        try:
            inp = read_analyze_csv(path, spec.side)
            angles, cal, events = analyze_input(inp)
        except SensorhubError as exc:
            run.refused = str(exc)
            run.seconds = time.perf_counter() - t0
            return run
    est = np.column_stack([angles.flexion_rad, angles.valgus_rad, angles.rotation_rad])
    run.est_deg = np.column_stack(
        [np.interp(rec.true_t_s, angles.t_s, np.degrees(est[:, k])) for k in range(3)])
    run.events = [event_from_json(e) for e in events]
    run.calibration = {k: v for k, v in vars_of(cal.report).items() if isinstance(v, (int, float, bool))}
    run.seconds = time.perf_counter() - t0
    return run


def event_from_json(obj: dict[str, Any]) -> Event:
    """The events.json object back as an Event (null metrics are NaN)."""
    nan = float("nan")
    metrics = {k: nan if v is None else float(v) for k, v in obj.items()
               if k not in ("type", "t_s", "leg_id", "control_score")}
    score = obj.get("control_score")
    return Event(obj["type"], obj.get("leg_id", ""), float(obj["t_s"]), metrics,
                 nan if score is None else float(score))


def vars_of(obj: Any) -> dict[str, Any]:
    fields = getattr(obj, "__dataclass_fields__", None)
    return {k: getattr(obj, k) for k in fields} if fields else dict(vars(obj))


def _run_pair(pair: tuple[str, int]) -> RecordingRun:
    return run_recording(*pair)


def run_population(pairs: Sequence[tuple[str, int]], workers: int | None = None) -> Iterator[RecordingRun]:
    """Recordings in worker processes, yielded in ``pairs`` order as they finish."""
    n = max(1, min(workers or os.cpu_count() or 1, len(pairs)))
    if n == 1:
        yield from (run_recording(*p) for p in pairs)
        return
    with ProcessPoolExecutor(n) as pool:
        yield from pool.map(_run_pair, pairs)
