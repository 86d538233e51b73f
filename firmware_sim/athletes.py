"""Simulated athletes: one motion, a thigh and a shank sensor per simulated leg, each with its own
mount, clock and error draw. Also the analyze-CSV arrays of one leg (``make_leg_csv_arrays``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sensorhub.conventions import ANALYZE_CSV_HEADER, SEGMENTS, SIDES
from sensorhub.model import FloatArray

from .device import SensorClock, SimulatedDevice, StreamSettings
from .errors_model import ImuErrorModel, ImuErrorParams, finish, preset, sensor_seed
from .exceptions import FirmwareSimError
from .link import BleLink, LinkParams, link_preset

PROTOCOL_NAME = "sensorhub-v1"
DEFAULT_MOUNT_MAX_DEG = 20.0
DEFAULT_MAX_DRIFT_PPM = 50.0


class AthleteError(FirmwareSimError):
    """A simulated athlete was configured with an unknown side or an inconsistent motion."""


class MotionLike(Protocol):
    """What the simulator needs from ``firmware_sim.body.simulate(...)``'s result."""

    @property
    def duration_s(self) -> float: ...

    @property
    def sides(self) -> Sequence[str]: ...

    @property
    def drill(self) -> str: ...

    @property
    def events(self) -> list[dict[str, Any]]: ...

    def imu(
        self, side: str, segment: str, mount: Any, t_s: FloatArray, wobble: bool = True
    ) -> tuple[FloatArray, FloatArray]: ...

    def truth_angles_deg(self, side: str, t_s: FloatArray) -> FloatArray: ...


MountFactory = Callable[[str, str, float, np.random.Generator], Any]
"""``(side, segment, mount_max_deg, rng) -> Mount``."""


def body_mount_factory(side: str, segment: str, mount_max_deg: float, rng: np.random.Generator) -> Any:
    """Random mount from the body model (nominal placement when ``mount_max_deg`` is 0)."""
    from .body import nominal_mount, random_mount  # lazy: the body model is heavy to import

    if mount_max_deg <= 0.0:
        return nominal_mount(side, segment)
    return random_mount(side, segment, rng, max_angle_deg=mount_max_deg)


@dataclass(frozen=True, slots=True)
class SimSensor:
    """One simulated sensor: where it sits and what is wrong with it (all ground truth)."""

    sensor_id: str
    athlete: str
    side: str
    segment: str
    mount: Any  # firmware_sim.body.Mount
    clock: SensorClock
    errors: ImuErrorParams
    seed: int

    def ref(self) -> dict[str, str]:
        """``SensorRef``-like metadata as recordings and configs carry it."""
        return {
            "sensor_id": self.sensor_id,
            "athlete": self.athlete,
            "side": self.side,
            "segment": self.segment,
            "protocol": PROTOCOL_NAME,
        }

    def error_model(self) -> ImuErrorModel:
        """A fresh error process for this sensor (same seed: same constants and noise every time)."""
        return ImuErrorModel(self.errors, sensor_seed(self.seed, self.sensor_id))


class SimulatedAthlete:
    """An athlete performing ``motion`` with a thigh and a shank sensor on each simulated leg."""

    def __init__(
        self,
        name: str,
        motion: MotionLike,
        *,
        sides: Sequence[str] | None = None,
        errors: str | ImuErrorParams = "realistic",
        mount_max_deg: float = DEFAULT_MOUNT_MAX_DEG,
        max_drift_ppm: float = DEFAULT_MAX_DRIFT_PPM,
        seed: int = 0,
        mount_factory: MountFactory = body_mount_factory,
    ) -> None:
        sides = tuple(motion.sides if sides is None else sides)
        for side in sides:
            if side not in SIDES:
                raise AthleteError(f"side must be one of {SIDES}, got {side!r}")
            if side not in motion.sides:
                raise AthleteError(f"the motion simulates sides {tuple(motion.sides)}, not {side!r}")
        self.name = name
        self.motion = motion
        self.sides = sides
        self.errors = preset(errors)
        self.mount_max_deg = mount_max_deg
        self.seed = seed
        sensors = []
        for side in sides:
            for segment in SEGMENTS:
                sensor_id = f"{name}-{side}-{segment}"
                rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(sensor_id.encode()), 1])
                mount = mount_factory(side, segment, mount_max_deg, rng)
                clock = SensorClock.random(rng, max_drift_ppm)
                sensors.append(SimSensor(sensor_id, name, side, segment, mount, clock, self.errors, seed))
        self.sensors: tuple[SimSensor, ...] = tuple(sensors)

    def sensor_refs(self) -> list[dict[str, str]]:
        return [s.ref() for s in self.sensors]

    def sensor(self, side: str, segment: str) -> SimSensor:
        for s in self.sensors:
            if s.side == side and s.segment == segment:
                return s
        raise AthleteError(f"athlete {self.name!r} has no {side} {segment} sensor")

    def signal(self, sensor: SimSensor) -> Callable[[FloatArray], tuple[FloatArray, FloatArray]]:
        motion = self.motion

        def ideal(t_s: FloatArray) -> tuple[FloatArray, FloatArray]:
            return motion.imu(sensor.side, sensor.segment, sensor.mount, t_s)

        return ideal

    def device(self, sensor: SimSensor) -> SimulatedDevice:
        rng = np.random.default_rng([sensor.seed & 0xFFFFFFFF, zlib.crc32(sensor.sensor_id.encode()), 2])
        return SimulatedDevice(
            sensor_id=sensor.sensor_id,
            signal=self.signal(sensor),
            clock=sensor.clock,
            errors=sensor.error_model(),
            end_true_s=float(self.motion.duration_s),
            battery_start_pct=float(rng.uniform(70.0, 100.0)),
        )


def simulate_motion(
    drill: str,
    *,
    reps: int = 5,
    sides: Sequence[str] = ("right",),
    seed: int = 0,
    faults: Mapping[str, float] | None = None,
    calibration_bends: bool = True,
    standing_s: float = 4.0,
) -> MotionLike:
    """``firmware_sim.body.simulate`` with the simulator's defaults (standing + knee bends first)."""
    from .body import simulate

    motion: MotionLike = simulate(
        drill=drill,
        reps=reps,
        sides=tuple(sides),
        seed=seed,
        faults=dict(faults or {}),
        calibration_bends=calibration_bends,
        standing_s=standing_s,
    )
    return motion


@dataclass(frozen=True, slots=True)
class LegCsvArrays:
    """One leg in the ``sensorhub analyze`` CSV layout, with its ground truth."""

    t_s: FloatArray  # (N,) true sample times
    data: FloatArray  # (N, 12) thigh ax..gz, shank ax..gz; m/s^2 and rad/s; NaN rows = lost by the link
    truth_deg: FloatArray  # (N, 3) flexion, valgus, rotation
    lost: np.ndarray[Any, np.dtype[np.bool_]]  # (N,) True where the row is NaN
    athlete: SimulatedAthlete
    side: str

    @property
    def motion(self) -> MotionLike:
        return self.athlete.motion

    def write_csv(self, path: Path | str) -> None:
        write_analyze_csv(path, self.t_s, self.data)


def write_analyze_csv(path: Path | str, t_s: FloatArray, data: FloatArray, time_fmt: str = "%.9g") -> None:
    table = np.column_stack([t_s, data])
    fmt = [time_fmt] + ["%.9g"] * data.shape[1]
    np.savetxt(path, table, delimiter=",", header=ANALYZE_CSV_HEADER, comments="", fmt=fmt)


def lost_sample_mask(
    n_samples: int, samples_per_packet: int, link: BleLink, rate_hz: float
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which samples of a regular stream ``link`` loses, packetised ``samples_per_packet`` at a time."""
    from .device import DevicePacket

    lost = np.zeros(n_samples, dtype=bool)
    empty_raw = np.zeros((0, 6), dtype=np.int16)
    for index, start in enumerate(range(0, n_samples, samples_per_packet)):
        stop = min(start + samples_per_packet, n_samples)
        t_emit = stop / rate_hz
        packet = DevicePacket("csv", index, index & 0xFFFF, 0, 0, 0, empty_raw, np.zeros(0), t_emit, b"")
        lost_before = link.stats.lost
        link.transmit(packet)
        if link.stats.lost > lost_before:
            lost[start:stop] = True
    return lost


def make_leg_csv_arrays(
    drill: str,
    side: str = "right",
    seed: int = 0,
    errors: str | ImuErrorParams = "realistic",
    mount_max_deg: float = DEFAULT_MOUNT_MAX_DEG,
    *,
    reps: int = 5,
    faults: Mapping[str, float] | None = None,
    rate_hz: float = 200.0,
    link: str | LinkParams = "typical",
    settings: StreamSettings | None = None,
    calibration_bends: bool = True,
    standing_s: float = 4.0,
    motion: MotionLike | None = None,
    athlete_name: str = "sim",
    mount_factory: MountFactory = body_mount_factory,
) -> LegCsvArrays:
    """Analyze-format arrays for one leg, without touching disk.

    Both sensors are sampled at common true times ``k / rate_hz`` (no clock drift: the CSV format has one
    time column), the error model is applied, values are saturated (and quantised for presets that
    quantise), and rows of samples the link lost are NaN (a row is NaN if either sensor lost it).
    """
    if motion is None:
        motion = simulate_motion(
            drill,
            reps=reps,
            sides=(side,),
            seed=seed,
            faults=faults,
            calibration_bends=calibration_bends,
            standing_s=standing_s,
        )
    athlete = SimulatedAthlete(
        athlete_name,
        motion,
        sides=(side,),
        errors=errors,
        mount_max_deg=mount_max_deg,
        seed=seed,
        mount_factory=mount_factory,
    )
    stream = settings or StreamSettings(rate_hz=int(rate_hz))
    t_s = np.arange(int(np.floor(motion.duration_s * rate_hz)) + 1, dtype=np.float64) / rate_hz
    t_s = t_s[t_s <= motion.duration_s]
    columns = []
    lost = np.zeros(t_s.shape[0], dtype=bool)
    link_params = link_preset(link)
    for segment in SEGMENTS:
        sensor = athlete.sensor(side, segment)
        gyr, acc = motion.imu(side, segment, sensor.mount, t_s)
        gyr, acc = sensor.error_model().apply(gyr, acc, rate_hz)
        gyr, acc = finish(gyr, acc, stream.acc_range_g, stream.gyr_range_dps, sensor.errors.quantise)
        columns += [acc, gyr]
        link_rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(sensor.sensor_id.encode()), 3])
        lost |= lost_sample_mask(
            t_s.shape[0], stream.samples_per_packet, BleLink(link_params, link_rng), rate_hz
        )
    data = np.hstack(columns)
    data[lost] = np.nan
    truth = np.asarray(motion.truth_angles_deg(side, t_s), dtype=np.float64)
    return LegCsvArrays(t_s=t_s, data=data, truth_deg=truth, lost=lost, athlete=athlete, side=side)
