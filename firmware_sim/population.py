"""A population of simulated recordings to evaluate on: everything that varies is drawn from a seed.

    from firmware_sim.population import TEST_SEEDS, TUNING_SEEDS, draw_spec, simulate
    spec = draw_spec(1_000_123, family="cmj")   # a frozen RecordingSpec (spec.to_json())
    rec = simulate(spec)                        # t_s, data (N, 12), true_t_s, truth_deg, events, ...
    rec.write("out/")                           # imu.csv, truth_angles.csv, truth.json

Seeds split into a tuning set (``TUNING_SEEDS``) and a test set (``TEST_SEEDS``): methods are tuned on
the first, figures are reported on the second only. A seed fixes the whole recording: family (unless
given), athlete (height, segment proportions, how they land, jump, squat, walk and run), the drill plan,
standing and calibration movement, sensor sites and mountings, the sensor (rate, sampling, bandwidth,
ranges, error class) and the logger (clock error, time-stamping jitter and batches, losses). What each
draw means and its range: docs/simulator_model.md, "Population".
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensorhub.conventions import ANGLES_CSV_HEADER, GRAVITY_M_S2, RAD_PER_DEG, SEGMENTS
from sensorhub.errors import SensorhubError
from sensorhub.model import FloatArray

from .athletes import write_analyze_csv
from .body import Geometry, Motion, Mount, session
from .body.mount import LEVELS, SITES, site_mount
from .body.style import (
    JOG,
    WALK,
    CutStyle,
    DropStyle,
    FlightStyle,
    GaitStyle,
    JumpStyle,
    LandingStyle,
    Style,
    Tempo,
)
from .errors_model import ImuErrorDraw, ImuErrorModel, ImuErrorParams, sensor_seed
from .frontend import FrontEnd, sample_sensor
from .logger import LoggerSpec, dropped, sample_instants, time_column
from .truth import to_jsonable

TUNING_SEEDS = range(0, 100_000)
"""Seeds a method may be tuned on (and debugged, plotted, looked at)."""
TEST_SEEDS = range(1_000_000, 1_100_000)
"""Seeds figures are reported on; never tuned on."""

FAMILIES = (
    "squat",
    "step_down",
    "lunge",
    "cmj",
    "drop_jump",
    "tuck_jump",
    "hop",
    "cut",
    "jog_curves",
    "walk",
    "jog",
    "mixed",
)
"""Recording families: one drill after standing and calibration, or ``mixed``, a 10-minute session."""
GAIT_FAMILIES = ("walk", "jog", "jog_curves")  # their own gait can serve as the calibration movement
RATES_HZ = (100, 104, 120, 125, 200, 208, 240, 250, 400, 416, 500, 800)
"""Output data rates of IMUs, phones and loggers (not only the wire protocol's list)."""
MIXED_DURATION_S = 600.0
IMU_CSV = "imu.csv"
TRUTH_ANGLES_CSV = "truth_angles.csv"
TRUTH_JSON = "truth.json"
_TAG = 0x9091  # keeps population streams apart from any other use of the same seed


class PopulationError(SensorhubError):
    """Bad population input: unknown family, negative seed (the message lists what is allowed)."""


def split_of(seed: int) -> str | None:
    """``"tuning"``, ``"test"``, or None for a seed in neither range."""
    if seed in TUNING_SEEDS:
        return "tuning"
    if seed in TEST_SEEDS:
        return "test"
    return None


@dataclass(frozen=True, slots=True)
class SensorSite:
    """Where one sensor is strapped (``firmware_sim.body.mount.site_mount``)."""

    segment: str
    site: str
    level: str
    in_plane_deg: float  # sensor x turned about the skin normal from "pointing distally"
    max_tilt_deg: float  # random tilt of the sensor off those axes, up to this


@dataclass(frozen=True, slots=True)
class RecordingSpec:
    """Everything that varies between recordings, drawn from ``seed`` (``draw_spec``)."""

    seed: int
    split: str | None
    family: str
    side: str  # the recorded leg
    height_m: float
    geometry: Geometry
    plan: tuple[tuple[str, int], ...]  # (drill, reps) after standing and calibration
    min_duration_s: float  # the plan repeats until this long (mixed sessions)
    standing_s: float  # standing at the start (the first 3 s quiet)
    rest_s: float  # standing between drills and at the end
    calibration: str | None  # "bends", "walk", "jog" or None (a gait family's own gait)
    faults: tuple[tuple[str, float], ...]  # fault name, probability per rep
    style: Style
    sites: tuple[SensorSite, SensorSite]  # thigh, shank
    frontend: FrontEnd
    errors: ImuErrorParams
    logger: LoggerSpec

    @property
    def rate_hz(self) -> float:
        return self.logger.rate_hz

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = to_jsonable({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        return out


# ---- drawing a spec ----------------------------------------------------------------------------------


def _rng(seed: int, name: str) -> np.random.Generator:
    """One independent stream per aspect, so that fixing the family changes nothing else."""
    return np.random.default_rng([seed, _TAG, zlib.crc32(name.encode())])


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _pick(rng: np.random.Generator, options: tuple[Any, ...], p: tuple[float, ...] | None = None) -> Any:
    return options[int(rng.choice(len(options), p=p))]


def _window(rng: np.random.Generator, lo: float, hi: float, width: float) -> tuple[float, float]:
    """A sub-range of [lo, hi] ``width`` wide: one athlete's habit within the population's range."""
    a = _u(rng, lo, hi - width)
    return (a, a + width)


def draw_spec(seed: int, family: str | None = None) -> RecordingSpec:
    """The recording of ``seed`` (any non-negative int; the named ranges are ``TUNING_SEEDS`` and
    ``TEST_SEEDS``). ``family`` fixes the family (one of ``FAMILIES``); every other draw is the same
    as without it."""
    if seed < 0:
        raise PopulationError(f"seed must be >= 0, got {seed}")
    if family is None:
        weights = np.array([0.5 if f == "mixed" else 1.0 for f in FAMILIES])  # mixed costs 10 minutes
        family = _pick(_rng(seed, "family"), FAMILIES, tuple(weights / weights.sum()))
    elif family not in FAMILIES:
        raise PopulationError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    assert family is not None
    body = _rng(seed, "body")
    side = _pick(body, ("right", "left"))
    height = _u(body, 1.50, 2.00)
    geometry = Geometry.for_height(height, _u(body, 0.94, 1.06), _u(body, 0.94, 1.06), _u(body, 0.85, 1.15))
    plan, min_duration, rest = _draw_plan(_rng(seed, "plan"), family)
    start = _rng(seed, "start")
    standing_s = _u(start, 3.0, 8.0)
    calib_u = _u(start, 0.0, 1.0)
    if calib_u < 0.6:
        calibration: str | None = "bends"
    elif family in GAIT_FAMILIES:
        calibration = None  # the drill's own gait
    else:
        calibration = "walk" if calib_u < 0.86 else "jog"
    style = _draw_style(_rng(seed, "style"), side, height)
    faults = _rng(seed, "faults")
    fault_p = (
        ("valgus", _u(faults, 0.0, 0.3)),
        ("stiff_landing", _u(faults, 0.0, 0.15)),
        ("fast_eccentric", _u(faults, 0.0, 0.2)),
    )
    sites_rng = _rng(seed, "sites")
    sites = tuple(
        SensorSite(
            seg,
            _pick(sites_rng, SITES[seg]),
            _pick(sites_rng, LEVELS[seg]),
            _pick(sites_rng, (0.0, 90.0, 180.0, 270.0), (0.7, 0.1, 0.1, 0.1)),
            45.0,
        )
        for seg in SEGMENTS
    )
    imu = _rng(seed, "imu")
    rate = float(_pick(imu, RATES_HZ))
    return RecordingSpec(
        seed=seed,
        split=split_of(seed),
        family=family,
        side=side,
        height_m=height,
        geometry=geometry,
        plan=plan,
        min_duration_s=min_duration,
        standing_s=standing_s,
        rest_s=rest,
        calibration=calibration,
        faults=fault_p,
        style=style,
        sites=(sites[0], sites[1]),
        frontend=_draw_frontend(imu, rate),
        errors=_draw_errors(imu),
        logger=_draw_logger(_rng(seed, "logger"), rate),
    )


_REPS: dict[str, tuple[int, int]] = {  # per family (single) and per block of a mixed session
    "squat": (3, 8),
    "step_down": (3, 7),
    "lunge": (2, 6),
    "cmj": (3, 6),
    "drop_jump": (2, 4),
    "tuck_jump": (2, 4),
    "hop": (3, 7),
    "cut": (3, 6),
    "jog_curves": (1, 3),
    "walk": (1, 3),
    "jog": (1, 2),
}


def _draw_plan(rng: np.random.Generator, family: str) -> tuple[tuple[tuple[str, int], ...], float, float]:
    """(plan, minimum duration, rest between drills)."""
    if family != "mixed":
        lo, hi = _REPS[family]
        return ((family, int(rng.integers(lo, hi + 1))),), 0.0, _u(rng, 2.0, 5.0)
    order = list(_REPS)
    rng.shuffle(order)
    plan = tuple(
        (drill, int(rng.integers(_REPS[drill][0], max(_REPS[drill][1] // 2, _REPS[drill][0]) + 1)))
        for drill in order
    )
    return plan, MIXED_DURATION_S, _u(rng, 3.0, 10.0)


def _gait(rng: np.random.Generator, base: GaitStyle, speed_m_s: float, step_s: float) -> GaitStyle:
    """``base`` at ``speed_m_s`` with steps of ``step_s``; stance and swing knee flexion scaled by the
    athlete's own amplitude."""
    stance_scale, swing_scale = _u(rng, 0.8, 1.25), _u(rng, 0.85, 1.15)
    return dataclasses.replace(
        base,
        speed_m_s=speed_m_s,
        step_s=step_s,
        stance_s=base.stance_s * step_s / base.step_s,
        stance_knee=tuple((f, k * stance_scale) for f, k in base.stance_knee),
        swing_knee=tuple((f, k * swing_scale) for f, k in base.swing_knee),
    )


def _draw_style(rng: np.random.Generator, side: str, height_m: float) -> Style:
    """One athlete's way of moving: habits (sub-ranges) within the population's ranges."""
    stiff = _u(rng, 0.0, 1.0)  # 0: soft, deep landings; 1: stiff, short ones
    excursion = 95.0 - 70.0 * stiff
    contact = _u(rng, 3.0, 22.0)
    impact = 0.065 - 0.035 * stiff
    rate = 100.0 + 300.0 * (1.0 - stiff)
    post = 400.0 + 450.0 * (1.0 - stiff)
    forefoot = 0.0 if rng.random() < 0.4 else _u(rng, 0.3, 1.0)
    landing = LandingStyle(
        peak_flexion_deg=(contact + excursion - 8.0, min(contact + excursion + 8.0, 125.0)),
        impact_s=(impact - 0.006, impact + 0.006),
        contact_flexion_deg=(contact, contact + 6.0),
        contact_rate_deg_s=(rate - 50.0, rate + 50.0),
        post_rate_deg_s=(post - 80.0, post + 80.0),
        forefoot_prob=forefoot,
    )
    hop_peak = contact + 0.55 * excursion
    hop_landing = dataclasses.replace(
        landing,
        peak_flexion_deg=(min(hop_peak - 6.0, 58.0), min(hop_peak + 6.0, 68.0)),
        post_rate_deg_s=(post * 0.7 - 60.0, post * 0.7 + 60.0),
    )

    def flight(tuck_hi: float) -> FlightStyle:
        return FlightStyle(
            tuck_flexion_deg=(0.0, _u(rng, 0.0, tuck_hi)) if rng.random() < 0.6 else (0.0, 0.0),
            legs_forward_m=(_u(rng, -0.1, 0.0), _u(rng, 0.0, 0.15)),
            contact_spread_s=_u(rng, 0.0, 0.03),
        )

    def tempo(depth: tuple[float, float], default_down: tuple[float, float]) -> Tempo:
        down = _pick(rng, ((0.4, 0.8), default_down, (2.5, 4.0)), (0.25, 0.5, 0.25))
        pause = _pick(rng, ((0.0, 0.0), (0.1, 0.4), (0.8, 2.0)), (0.4, 0.4, 0.2))
        return Tempo(depth, down, (_u(rng, 0.6, 1.2), _u(rng, 1.3, 2.5)), pause, (0.35, 0.6))

    squat_depth = _pick(rng, ((25.0, 40.0), (45.0, 80.0), (80.0, 120.0), (25.0, 115.0)))
    # walking: step length ~0.41 H at 1.3 m/s, growing sub-linearly with speed; running: cadence stays
    # near 160-190 steps/min whatever the speed (longer steps go faster), a little slower for taller runners
    v_walk = _u(rng, 1.0, 1.6)
    walk = _gait(rng, WALK, v_walk, _u(rng, 0.38, 0.45) * height_m * (v_walk / 1.3) ** 0.4 / v_walk)
    jog = _gait(rng, JOG, _u(rng, 2.3, 3.8), _u(rng, 0.315, 0.37) * (height_m / 1.75) ** 0.3)
    return Style(
        landing=landing,
        hop_landing=hop_landing,
        cmj=JumpStyle(
            _window(rng, 50.0, 105.0, 20.0),
            (0.35, 0.7),
            (0.25, 0.4),
            _window(rng, 0.35, 0.6, 0.1),
            (-0.1, 0.2),
            (-0.05, 0.05),
            rebound_prob=0.0 if rng.random() < 0.6 else _u(rng, 0.3, 0.8),
            rebound_contact_s=(0.2, 0.45),
            flight=flight(60.0),
        ),
        tuck_jump=JumpStyle(
            _window(rng, 35.0, 80.0, 20.0),
            (0.3, 0.45),
            (0.25, 0.35),
            (0.5, 0.68),
            (-0.1, 0.2),
            (-0.05, 0.05),
            rebound_prob=_u(rng, 0.3, 1.0),
            rebound_contact_s=(0.25, 0.45),
            flight=FlightStyle(_window(rng, 70.0, 120.0, 20.0), (0.05, 0.3), _u(rng, 0.0, 0.03)),
        ),
        hop=JumpStyle(
            _window(rng, 20.0, 50.0, 15.0),
            (0.3, 0.5),
            (0.2, 0.3),
            _window(rng, 0.25, 0.45, 0.1),
            (0.0, _u(rng, 0.3, 1.8)),
            (-0.1, 0.1),
            rebound_prob=_u(rng, 0.0, 0.7),
            rebound_contact_s=(0.25, 0.4),
            flight=FlightStyle((0.0, _u(rng, 0.0, 30.0)), (-0.1, 0.1)),
        ),
        hop_side=side if rng.random() < 0.75 else ("left" if side == "right" else "right"),
        drop_jump=DropStyle(box_m=_window(rng, 0.2, 0.45, 0.08), flight=flight(50.0)),
        squat=tempo(squat_depth, (1.0, 2.2)),
        step_down=tempo(_pick(rng, ((25.0, 45.0), (45.0, 85.0))), (1.2, 3.0)),
        lunge=tempo(_window(rng, 60.0, 110.0, 20.0), (1.0, 2.0)),
        bends=Tempo(_window(rng, 40.0, 90.0, 20.0), (0.7, 1.5), (0.7, 1.5)),
        n_bends=int(rng.integers(3, 6)),
        walk=walk,
        jog=jog,
        cut=CutStyle((45.0, 135.0), _u(rng, 0.0, 0.5)),
        sway_rms_m=_u(rng, 0.001, 0.005),
        weight_shift_m=(0.02, 0.05) if rng.random() < 0.6 else (0.0, 0.0),
    )


def _draw_frontend(rng: np.random.Generator, rate_hz: float) -> FrontEnd:
    interval = rng.random() < 0.35
    return FrontEnd(
        sampling="interval_mean" if interval else "instant",
        bandwidth_hz=0.0 if interval else _u(rng, rate_hz / 4.0, rate_hz / 2.0),
        acc_range_g=int(_pick(rng, (8, 16))),
        gyr_range_dps=int(_pick(rng, (1000, 2000))),
    )


def _draw_errors(rng: np.random.Generator) -> ImuErrorParams:
    """An error class between research grade (quality 0) and cheap (1), each magnitude log-interpolated
    between its ends; the cheap end is ten times a BMI270's noise, +-3 deg/s gyro bias, 2 % scale,
    1 deg misalignment, 50 mg accelerometer bias."""
    quality = _u(rng, 0.0, 1.0)

    def grade(lo: float, hi: float) -> float:
        q = float(np.clip(quality + rng.normal(0.0, 0.1), 0.0, 1.0))
        return lo * (hi / lo) ** q

    return ImuErrorParams(
        name=f"population q={quality:.2f}",
        gyr_noise_density_rad_s_rthz=grade(0.007, 0.07) * RAD_PER_DEG,
        acc_noise_density_m_s2_rthz=grade(160e-6, 1600e-6) * GRAVITY_M_S2,
        gyr_bias_max_rad_s=grade(0.2, 3.0) * RAD_PER_DEG,
        gyr_bias_rw_rad_s_rts=grade(0.001, 0.01) * RAD_PER_DEG,
        acc_bias_max_m_s2=grade(0.005, 0.05) * GRAVITY_M_S2,
        gyr_scale_error_max=grade(0.002, 0.02),
        acc_scale_error_max=grade(0.002, 0.02),
        misalignment_max=grade(0.1, 1.0) * RAD_PER_DEG,
        gyr_bias_instability_rad_s=grade(0.003, 0.03) * RAD_PER_DEG,
        gyr_bias_corr_s=_u(rng, 20.0, 300.0),
        quantise=True,
    )


def _draw_logger(rng: np.random.Generator, rate_hz: float) -> LoggerSpec:
    sigma = _u(rng, 0.1e-3, 0.5e-3)
    return LoggerSpec(
        rate_hz=rate_hz,
        clock_ppm=_u(rng, -200.0, 200.0),
        jitter_sigma_s=sigma,
        jitter_max_s=min(_u(rng, 2.5, 3.0) * sigma, 1.5e-3),
        batch_samples=1 if rng.random() < 0.6 else int(rng.integers(2, 9)),
        time_resolution_s=float(_pick(rng, (1e-6, 1e-4, 1e-3), (0.6, 0.25, 0.15))),
        drop_rows=_pick(rng, ("nan", "missing")),
        drop_prob=_u(rng, 0.0, 0.003),
        bursts_per_min=_u(rng, 0.0, 3.0),
    )


# ---- simulating a spec -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PopulationRecording:
    """One simulated recording as a logger wrote it, with its ground truth."""

    spec: RecordingSpec
    t_s: FloatArray  # (N,) the logger's time column (jitter, batches, gaps where rows are missing)
    data: FloatArray  # (N, 12) thigh ax..gz, shank ax..gz (m/s^2, rad/s); NaN rows = dropped samples
    true_t_s: FloatArray  # (N,) the true instant of each row's sample
    truth_deg: FloatArray  # (N, 3) knee flexion, valgus, rotation at true_t_s
    events: list[dict[str, Any]]  # landing / cut / rep truth of the recorded leg (see truth.json)
    curves: list[tuple[float, float, float]]  # jogging curves: (start, end, heading change deg)
    steps: list[dict[str, Any]]  # walking/jogging foot contacts of the recorded leg (not scored)
    mounts: dict[str, Mount]
    error_draws: dict[str, ImuErrorDraw]
    duration_s: float
    n_dropped: int  # samples lost (NaN rows or missing rows)
    motion: Motion

    def truth_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_json(),
            "duration_s": self.duration_s,
            "rows": int(self.t_s.size),
            "dropped_samples": self.n_dropped,
            "true_rate_hz": 1.0 / self.spec.logger.period_s,
            "mounts": to_jsonable(self.mounts),
            "error_constants": to_jsonable(self.error_draws),
            "events": to_jsonable(self.events),
            "curves": [list(c) for c in self.curves],
            "steps": to_jsonable(self.steps),
        }

    def write(self, out_dir: Path | str) -> Path:
        """``imu.csv`` (the analyze input), ``truth_angles.csv`` (true time of each row) and
        ``truth.json`` (spec, events, curves, mounts, error constants) in ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_analyze_csv(out / IMU_CSV, self.t_s, self.data, time_fmt="%.6f")
        np.savetxt(
            out / TRUTH_ANGLES_CSV,
            np.column_stack([self.true_t_s, self.truth_deg]),
            delimiter=",",
            header=ANGLES_CSV_HEADER,
            comments="",
            fmt=["%.9f", "%.6f", "%.6f", "%.6f"],
        )
        (out / TRUTH_JSON).write_text(json.dumps(self.truth_json(), indent=1, allow_nan=True))
        return out


def simulate(spec: RecordingSpec) -> PopulationRecording:
    """The recording ``spec`` describes (deterministic)."""
    motion = session(
        list(spec.plan),
        sides=(spec.side,),
        seed=spec.seed,
        faults=dict(spec.faults),
        standing_s=spec.standing_s,
        rest_s=spec.rest_s,
        min_duration_s=spec.min_duration_s,
        geometry=spec.geometry,
        style=spec.style,
        calibration=spec.calibration,
    )
    mount_rng = _rng(spec.seed, "mounts")
    mounts = {
        site.segment: site_mount(
            spec.side,
            site.segment,
            site.site,
            site.level,
            mount_rng,
            geometry=spec.geometry,
            max_angle_deg=site.max_tilt_deg,
            in_plane_deg=site.in_plane_deg,
        )
        for site in spec.sites
    }
    true_t = sample_instants(spec.logger, motion.duration_s, _rng(spec.seed, "clock"))
    columns = []
    draws = {}
    for segment in SEGMENTS:
        errors = ImuErrorModel(spec.errors, sensor_seed(spec.seed, f"population/{segment}"))
        gyr, acc = sample_sensor(motion, spec.side, segment, mounts[segment], true_t, spec.frontend, errors)
        columns += [acc, gyr]
        draws[segment] = errors.draw
    data = np.hstack(columns)
    truth = np.asarray(motion.truth_angles_deg(spec.side, true_t), dtype=np.float64)
    lost = dropped(spec.logger, true_t, _rng(spec.seed, "drops"))
    t_col = time_column(spec.logger, true_t, _rng(spec.seed, "stamps"))
    if spec.logger.drop_rows == "nan":
        data[lost] = np.nan
    else:
        keep = ~lost
        t_col, data, true_t, truth = t_col[keep], data[keep], true_t[keep], truth[keep]
    return PopulationRecording(
        spec=spec,
        t_s=t_col,
        data=data,
        true_t_s=true_t,
        truth_deg=truth,
        events=motion.events,
        curves=motion.curves,
        steps=motion.gait_events,
        mounts=mounts,
        error_draws=draws,
        duration_s=float(motion.duration_s),
        n_dropped=int(lost.sum()),
        motion=motion,
    )


def describe() -> str:
    """The families and the seed split, for ``firmware-sim population --list``."""
    lines = ["families: " + ", ".join(FAMILIES)]
    for name, seeds in (("tuning", TUNING_SEEDS), ("test", TEST_SEEDS)):
        lines.append(f"{name} seeds: {seeds.start}..{seeds.stop - 1}")
    lines.append("figures are reported on the test seeds only; tune on the tuning seeds")
    return "\n".join(lines)
