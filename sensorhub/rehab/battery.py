"""Reassessment battery: a standard set of tests, results per test and leg, compared with the last battery.

The tests (each a set of the drill named in ``BatteryTest.drills`` within the battery session):
- single-leg squat and step-down (reps): depth, valgus, eccentric control;
- drop jump (landings: the drop and the rebound): knee flexion at contact and excursion, valgus, impact,
  ground contact time, jump height, stabilisation;
- single-leg hop (landings): flight time and ``hop_distance_proxy_m``. The IMUs do not measure the hop's
  horizontal distance. The proxy is the range of a projectile launched at 45 deg with the measured flight
  time T, landing at the take-off height: d = g T^2 / 2. It is not the hop distance: it tracks it only as
  long as the athlete's take-off angle stays the same, so use it to compare legs (LSI) and batteries of
  one athlete, never against published hop-distance norms.

Per test and leg: mean, SD, median and count of each metric over the test's events. Per metric with
both legs: LSI = 100 * min(|mean_L|, |mean_R|) / max(|mean_L|, |mean_R|) (as ``sensorhub.analysis.
limb_symmetry``; >= 90 % is a common return-to-sport criterion). ``compare`` gives the change of every
metric (per leg, and of its LSI) from the previous battery, judged better or worse by the metric's
direction (``METRIC_DIRECTION``).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sensorhub.analysis.symmetry import lsi_pct
from sensorhub.conventions import GRAVITY_M_S2
from sensorhub.errors import InputError
from sensorhub.history import HistoryStore, StoredEvent
from sensorhub.model import leg_side

HOP_DISTANCE_PROXY = "hop_distance_proxy_m"
LSI_GOOD_PCT = 90.0


@dataclass(frozen=True, slots=True)
class BatteryTest:
    name: str
    title: str
    drills: tuple[str, ...]  # set drills whose events belong to this test
    event_type: str
    metrics: tuple[str, ...]


_REP_METRICS = ("depth_deg", "peak_valgus_deg", "valgus_excursion_deg", "eccentric_s", "control_score")
BATTERY: tuple[BatteryTest, ...] = (
    BatteryTest("single_leg_squat", "Single-leg squat", ("single_leg_squat",), "rep", _REP_METRICS),
    BatteryTest("step_down", "Step-down", ("step_down",), "rep", _REP_METRICS),
    BatteryTest(
        "drop_jump",
        "Drop jump",
        ("drop_jump",),
        "landing",
        (
            "flexion_at_contact_deg",
            "peak_flexion_deg",
            "flexion_excursion_deg",
            "peak_valgus_deg",
            "peak_shank_accel_g",
            "ground_contact_time_s",
            "jump_height_m",
            "time_to_stabilization_s",
            "control_score",
        ),
    ),
    BatteryTest(
        "single_leg_hop",
        "Single-leg hop (distance proxy from flight time)",
        ("single_leg_hop",),
        "landing",
        (
            "flight_time_s",
            HOP_DISTANCE_PROXY,
            "flexion_at_contact_deg",
            "peak_flexion_deg",
            "peak_valgus_deg",
            "time_to_stabilization_s",
            "control_score",
        ),
    ),
)

# +1: higher is better, -1: lower is better; metrics absent here have no better direction (reported, not
# judged). Ground contact time of a drop jump: shorter is the more reactive rebound.
METRIC_DIRECTION: Mapping[str, int] = {
    "flexion_at_contact_deg": 1,
    "peak_flexion_deg": 1,
    "flexion_excursion_deg": 1,
    "depth_deg": 1,
    "eccentric_s": 1,
    "control_score": 1,
    "jump_height_m": 1,
    "flight_time_s": 1,
    HOP_DISTANCE_PROXY: 1,
    "lsi_pct": 1,
    "peak_valgus_deg": -1,
    "valgus_excursion_deg": -1,
    "peak_shank_accel_g": -1,
    "time_to_stabilization_s": -1,
    "ground_contact_time_s": -1,
}


def hop_distance_proxy_m(flight_time_s: float) -> float:
    """g T^2 / 2: a 45-deg projectile's range for flight time T (a proxy, see the module docstring)."""
    return GRAVITY_M_S2 * flight_time_s**2 / 2.0


@dataclass(frozen=True, slots=True)
class MetricSummary:
    mean: float
    sd: float
    median: float
    n: int


@dataclass(frozen=True, slots=True)
class TestResult:
    test: str
    legs: dict[str, dict[str, MetricSummary]]  # side -> metric -> summary
    lsi_pct: dict[str, float]  # metric -> LSI when both legs have it

    @property
    def n_events(self) -> dict[str, int]:
        return {side: max((m.n for m in metrics.values()), default=0) for side, metrics in self.legs.items()}


@dataclass(frozen=True, slots=True)
class BatteryResult:
    athlete_id: str
    session_id: str
    t_s: float
    tests: dict[str, TestResult] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "athlete_id": self.athlete_id,
            "session_id": self.session_id,
            "t_s": self.t_s,
            "tests": {name: asdict(t) for name, t in self.tests.items()},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> BatteryResult:
        tests = {
            name: TestResult(
                t["test"],
                {side: {m: MetricSummary(**s) for m, s in ms.items()} for side, ms in t["legs"].items()},
                {m: float(v) for m, v in t["lsi_pct"].items()},
            )
            for name, t in obj["tests"].items()
        }
        return cls(str(obj["athlete_id"]), str(obj["session_id"]), float(obj["t_s"]), tests)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), allow_nan=False)


def _summary(values: Sequence[float]) -> MetricSummary:
    return MetricSummary(
        mean=round(statistics.fmean(values), 4),
        sd=round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        median=round(statistics.median(values), 4),
        n=len(values),
    )


def event_values(test: BatteryTest, event: StoredEvent) -> dict[str, float]:
    """The test's metric values of one event (derived ones included), finite values only."""
    values = dict(event.metrics)
    if event.control_score is not None:
        values["control_score"] = event.control_score
    flight = values.get("flight_time_s")
    if flight is not None and math.isfinite(flight):
        values[HOP_DISTANCE_PROXY] = hop_distance_proxy_m(flight)
    return {m: float(values[m]) for m in test.metrics if m in values and math.isfinite(values[m])}


def battery_result(
    athlete_id: str, session_id: str, t_s: float, events: Iterable[StoredEvent]
) -> BatteryResult:
    """Results of every test that has events in ``events`` (a battery session's)."""
    by_test: dict[str, dict[str, dict[str, list[float]]]] = {}
    for e in events:
        side = leg_side(e.leg_id)
        if side not in ("left", "right"):
            continue
        for test in BATTERY:
            if e.type != test.event_type or e.drill not in test.drills:
                continue
            per_metric = by_test.setdefault(test.name, {}).setdefault(side, {})
            for metric, value in event_values(test, e).items():
                per_metric.setdefault(metric, []).append(value)
    tests: dict[str, TestResult] = {}
    for test in BATTERY:
        legs_values = by_test.get(test.name)
        if not legs_values:
            continue
        legs = {
            side: {m: _summary(values[m]) for m in test.metrics if m in values}
            for side, values in sorted(legs_values.items())
        }
        lsi = {
            m: lsi_pct(legs["left"][m].mean, legs["right"][m].mean)
            for m in test.metrics
            if m in legs.get("left", {}) and m in legs.get("right", {})
        }
        tests[test.name] = TestResult(test.name, legs, lsi)
    return BatteryResult(athlete_id, session_id, t_s, tests)


Verdict = Literal["better", "worse", "unchanged", "not judged"]


@dataclass(frozen=True, slots=True)
class Change:
    test: str
    leg: str  # left | right | lsi (the metric's limb symmetry index)
    metric: str
    before: float
    after: float
    verdict: Verdict

    @property
    def delta(self) -> float:
        return self.after - self.before


def judge(metric: str, before: float, after: float) -> Verdict:
    direction = METRIC_DIRECTION.get(metric, 0)
    if direction == 0:
        return "not judged"
    if after == before:
        return "unchanged"
    return "better" if (after - before) * direction > 0 else "worse"


def compare(current: BatteryResult, previous: BatteryResult) -> list[Change]:
    """Every metric both batteries have, per test and leg, and every LSI both have (higher is better)."""
    out: list[Change] = []
    for name, cur in current.tests.items():
        prev = previous.tests.get(name)
        if prev is None:
            continue
        for side in ("left", "right"):
            for metric, now in cur.legs.get(side, {}).items():
                then = prev.legs.get(side, {}).get(metric)
                if then is not None:
                    verdict = judge(metric, then.mean, now.mean)
                    out.append(Change(name, side, metric, then.mean, now.mean, verdict))
        for metric, now_lsi in cur.lsi_pct.items():
            then_lsi = prev.lsi_pct.get(metric)
            if then_lsi is not None:
                verdict = judge("lsi_pct", then_lsi, now_lsi)
                out.append(Change(name, "lsi", metric, then_lsi, now_lsi, verdict))
    return out


# ---- storage (the store's ``batteries`` table) -----------------------------------------------------


def record_battery(store: HistoryStore, result: BatteryResult) -> None:
    """Store a battery's results (non-blocking, like every store write)."""
    store.record_battery(result.athlete_id, result.session_id, result.t_s, result.to_json())


def stored_batteries(
    store: HistoryStore, athlete_id: str, since_s: float | None = None
) -> list[BatteryResult]:
    """The athlete's batteries, oldest first (blocking read)."""
    return [BatteryResult.from_json(obj) for obj in store.batteries(athlete_id, since_s)]


def battery_from_store(store: HistoryStore, athlete_id: str, session_id: str) -> BatteryResult:
    """Compute a battery session's results from its stored events (blocking read)."""
    sessions = {s.id: s for s in store.sessions(athlete_id)}
    if session_id not in sessions:
        raise InputError(f"no session {session_id!r} for athlete {athlete_id!r}")
    events = store.events(athlete_id, session_id=session_id)
    return battery_result(athlete_id, session_id, sessions[session_id].started_s, events)


def battery_main(
    athlete: str, session_id: str | None = None, db: Path | None = None, config: Path | None = None
) -> int:
    """``sensorhub battery ATHLETE [--session ID]``: the battery of a session (default: the latest),
    stored, and printed with its changes since the previous stored battery."""
    from sensorhub.config import existing_history

    path = existing_history(db, config)
    with HistoryStore(path) as store:
        sessions = store.sessions(athlete)
        if not sessions:
            raise InputError(f"no sessions of athlete {athlete!r} in {path}")
        sid = session_id or sessions[-1].id
        previous = [b for b in stored_batteries(store, athlete) if b.session_id != sid]
        result = battery_from_store(store, athlete, sid)
        if not result.tests:
            raise InputError(f"session {sid} of {athlete!r} has none of the battery's drills")
        record_battery(store, result)
    print(f"battery of {athlete}, session {sid}:")
    for name, test in result.tests.items():
        counts = ", ".join(f"{side} {n}" for side, n in sorted(test.n_events.items()))
        lsi = ", ".join(f"{m} {v:.0f} %" for m, v in test.lsi_pct.items())
        print(f"  {name}: events {counts}" + (f"; LSI {lsi}" if lsi else ""))
    if previous:
        print(f"changes since the battery of session {previous[-1].session_id}:")
        for c in compare(result, previous[-1]):
            print(f"  {c.test} {c.leg} {c.metric}: {c.before:.2f} -> {c.after:.2f} ({c.verdict})")
    else:
        print("first battery of this athlete: nothing to compare with yet")
    return 0
