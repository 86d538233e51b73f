"""IMU error model: what a consumer MEMS IMU does to the ideal signals of the body model.

Measured = M @ ideal + bias + white noise, then saturation at the configured full scale and int16
quantisation. ``M = (I + diag(scale error)) + off-diagonal cross-axis terms`` (axis misalignment);
the gyroscope bias is a turn-on constant plus a random walk. Per-sensor constants are drawn once from a
seed; noise and drift are streamed so that processing consecutive chunks equals one batch.

Noise densities are one-sided amplitude spectral densities as datasheets give them: a white sequence
sampled at ``rate_hz`` has standard deviation ``density * sqrt(rate_hz / 2)``.

Preset ``realistic`` (typical values of BMI270 / ICM-42688-P class parts, datasheets rev. 2021-2023):

| error | value | datasheet reference |
|---|---|---|
| gyro noise density | 0.007 deg/s/sqrt(Hz) | BMI270 0.007 typ (ICM-42688-P 0.0028) |
| gyro turn-on bias | uniform +-1.0 deg/s per axis | zero-rate offset +-0.5 typ, plus soldering/board stress |
| gyro bias random walk | 0.002 deg/s/sqrt(s) | ZRO drift +-0.015 deg/s/K over a few K: ~0.05 deg/s/10 min |
| accel noise density | 160 ug/sqrt(Hz) | BMI270 160 typ (ICM-42688-P 70) |
| accel bias | uniform +-20 mg per axis | zero-g offset +-20 mg typ (both parts) |
| scale-factor error | uniform +-0.5 % per axis (gyro and accel) | sensitivity tolerance +-0.4..0.5 % |
| axis misalignment | uniform +-0.01 (~0.6 deg) per cross-axis term | cross-axis sensitivity +-1 % |
| quantisation | int16 at the configured range | 16-bit output registers |

Optional (zero in both presets): gyro bias instability, a first-order Gauss-Markov bias with a given
standard deviation and correlation time (the flat part of an Allan deviation plot; firmware_sim.population
draws it per sensor).

Preset ``clean`` has none of these errors and no quantisation. Saturation at the configured range
(e.g. +-16 g, +-2000 deg/s) is physics, not an error: it applies to every preset.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sensorhub.conventions import GRAVITY_M_S2, RAD_PER_DEG
from sensorhub.model import FloatArray

from .encoder import RAW_MAX, RAW_MIN
from .exceptions import FirmwareSimError

MICRO_G_M_S2 = 1e-6 * GRAVITY_M_S2


class ErrorModelError(FirmwareSimError):
    """Unknown preset or invalid error-model input."""


@dataclass(frozen=True, slots=True)
class ImuErrorParams:
    """Error magnitudes of one IMU type; each sensor draws its own constants from these."""

    name: str = "custom"
    gyr_noise_density_rad_s_rthz: float = 0.0  # one-sided ASD, rad/s/sqrt(Hz)
    acc_noise_density_m_s2_rthz: float = 0.0  # one-sided ASD, m/s^2/sqrt(Hz)
    gyr_bias_max_rad_s: float = 0.0  # turn-on bias, uniform in +-max per axis
    gyr_bias_rw_rad_s_rts: float = 0.0  # bias random walk, rad/s per sqrt(s)
    acc_bias_max_m_s2: float = 0.0  # uniform in +-max per axis
    gyr_scale_error_max: float = 0.0  # fractional, uniform in +-max per axis
    acc_scale_error_max: float = 0.0
    misalignment_max: float = 0.0  # cross-axis coupling (~rad), uniform in +-max per off-diagonal term
    gyr_bias_instability_rad_s: float = 0.0  # Gauss-Markov bias: stationary standard deviation
    gyr_bias_corr_s: float = 100.0  # its correlation time
    quantise: bool = False  # round to the int16 step of the configured range (the wire always does)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, ImuErrorParams] = {
    "clean": ImuErrorParams(name="clean"),
    "realistic": ImuErrorParams(
        name="realistic",
        gyr_noise_density_rad_s_rthz=0.007 * RAD_PER_DEG,
        acc_noise_density_m_s2_rthz=160.0 * MICRO_G_M_S2,
        gyr_bias_max_rad_s=1.0 * RAD_PER_DEG,
        gyr_bias_rw_rad_s_rts=0.002 * RAD_PER_DEG,
        acc_bias_max_m_s2=0.020 * GRAVITY_M_S2,
        gyr_scale_error_max=0.005,
        acc_scale_error_max=0.005,
        misalignment_max=0.01,
        quantise=True,
    ),
}


def preset(name: str | ImuErrorParams) -> ImuErrorParams:
    """The named preset (``clean`` or ``realistic``); a params object passes through."""
    if isinstance(name, ImuErrorParams):
        return name
    try:
        return PRESETS[name]
    except KeyError:
        raise ErrorModelError(f"unknown error preset {name!r}; choose one of {sorted(PRESETS)}") from None


def sensor_seed(seed: int, sensor_id: str) -> np.random.SeedSequence:
    """A per-sensor seed that does not depend on how many other sensors exist."""
    return np.random.SeedSequence([seed & 0xFFFFFFFF, zlib.crc32(sensor_id.encode())])


@dataclass(frozen=True, slots=True)
class ImuErrorDraw:
    """The constants one sensor drew: bias and the 3x3 scale/misalignment matrices."""

    gyr_bias_rad_s: FloatArray
    acc_bias_m_s2: FloatArray
    gyr_matrix: FloatArray  # measured = matrix @ true
    acc_matrix: FloatArray

    def to_json(self) -> dict[str, Any]:
        return {
            "gyr_bias_rad_s": self.gyr_bias_rad_s.tolist(),
            "acc_bias_m_s2": self.acc_bias_m_s2.tolist(),
            "gyr_matrix": self.gyr_matrix.tolist(),
            "acc_matrix": self.acc_matrix.tolist(),
        }


def _draw_matrix(rng: np.random.Generator, scale_max: float, misalign_max: float) -> FloatArray:
    matrix = np.eye(3) + np.diag(rng.uniform(-scale_max, scale_max, 3))
    off = rng.uniform(-misalign_max, misalign_max, (3, 3))
    np.fill_diagonal(off, 0.0)
    return np.asarray(matrix + off, dtype=np.float64)


@dataclass(slots=True)
class ImuErrorModel:
    """One sensor's error process. ``apply`` consumes consecutive chunks of samples at ``rate_hz``."""

    params: ImuErrorParams
    seed: np.random.SeedSequence
    draw: ImuErrorDraw = field(init=False)
    _gyr_noise_rng: np.random.Generator = field(init=False)
    _acc_noise_rng: np.random.Generator = field(init=False)
    _drift_rng: np.random.Generator = field(init=False)
    _gyr_drift_rad_s: FloatArray = field(init=False)
    _instability_rng: np.random.Generator = field(init=False)
    _gyr_instability_rad_s: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        # spawn(5) begins with the same four children spawn(4) gave: existing streams are unchanged
        const_seq, gyr_seq, acc_seq, drift_seq, instability_seq = self.seed.spawn(5)
        const_rng = np.random.default_rng(const_seq)
        p = self.params
        self.draw = ImuErrorDraw(
            gyr_bias_rad_s=const_rng.uniform(-p.gyr_bias_max_rad_s, p.gyr_bias_max_rad_s, 3),
            acc_bias_m_s2=const_rng.uniform(-p.acc_bias_max_m_s2, p.acc_bias_max_m_s2, 3),
            gyr_matrix=_draw_matrix(const_rng, p.gyr_scale_error_max, p.misalignment_max),
            acc_matrix=_draw_matrix(const_rng, p.acc_scale_error_max, p.misalignment_max),
        )
        self._gyr_noise_rng = np.random.default_rng(gyr_seq)
        self._acc_noise_rng = np.random.default_rng(acc_seq)
        self._drift_rng = np.random.default_rng(drift_seq)
        self._gyr_drift_rad_s = np.zeros(3)
        self._instability_rng = np.random.default_rng(instability_seq)
        self._gyr_instability_rad_s = self._instability_rng.standard_normal(3) * p.gyr_bias_instability_rad_s

    @classmethod
    def for_sensor(cls, params: ImuErrorParams | str, seed: int, sensor_id: str) -> ImuErrorModel:
        return cls(preset(params), sensor_seed(seed, sensor_id))

    @property
    def gyr_bias_now_rad_s(self) -> FloatArray:
        """Current gyroscope bias: turn-on constant plus the drift accumulated so far (random walk and,
        when configured, the Gauss-Markov instability)."""
        bias = self.draw.gyr_bias_rad_s + self._gyr_drift_rad_s
        if self.params.gyr_bias_instability_rad_s > 0.0:
            bias = bias + self._gyr_instability_rad_s
        return np.asarray(bias, dtype=np.float64)

    def _instability(self, n: int, rate_hz: float) -> FloatArray:
        """The next ``n`` samples of the Gauss-Markov bias (stationary from the first sample)."""
        from ._kernels import ar1_columns  # numba: only loaded when the model has this term

        p = self.params
        a = float(np.exp(-1.0 / (rate_hz * p.gyr_bias_corr_s)))
        w = self._instability_rng.standard_normal((n, 3)) * (
            p.gyr_bias_instability_rad_s * np.sqrt(1.0 - a * a)
        )
        series = ar1_columns(self._gyr_instability_rad_s, a, w)
        self._gyr_instability_rad_s = series[-1].copy()
        return series

    def apply(
        self, gyr_rad_s: FloatArray, acc_m_s2: FloatArray, rate_hz: float
    ) -> tuple[FloatArray, FloatArray]:
        """Ideal (N, 3) signals -> measured (N, 3) signals before saturation and quantisation."""
        gyr = np.asarray(gyr_rad_s, dtype=np.float64)
        acc = np.asarray(acc_m_s2, dtype=np.float64)
        if gyr.ndim != 2 or gyr.shape[1] != 3 or acc.shape != gyr.shape:
            raise ErrorModelError(f"expected two (N, 3) arrays, got {gyr.shape} and {acc.shape}")
        if rate_hz <= 0.0:
            raise ErrorModelError(f"rate_hz must be positive, got {rate_hz}")
        n = gyr.shape[0]
        p = self.params
        noise_scale = np.sqrt(rate_hz / 2.0)
        # Always draw, even for zero magnitudes, so the streams stay aligned whatever the preset.
        gyr_noise = self._gyr_noise_rng.standard_normal((n, 3)) * (
            p.gyr_noise_density_rad_s_rthz * noise_scale
        )
        acc_noise = self._acc_noise_rng.standard_normal((n, 3)) * (
            p.acc_noise_density_m_s2_rthz * noise_scale
        )
        steps = self._drift_rng.standard_normal((n, 3)) * (p.gyr_bias_rw_rad_s_rts * np.sqrt(1.0 / rate_hz))
        drift = self._gyr_drift_rad_s + np.cumsum(steps, axis=0)
        if n:
            self._gyr_drift_rad_s = drift[-1].copy()
        gyr_out = gyr @ self.draw.gyr_matrix.T + self.draw.gyr_bias_rad_s + drift + gyr_noise
        if p.gyr_bias_instability_rad_s > 0.0 and n:
            gyr_out += self._instability(n, rate_hz)
        acc_out = acc @ self.draw.acc_matrix.T + self.draw.acc_bias_m_s2 + acc_noise
        return np.asarray(gyr_out, dtype=np.float64), np.asarray(acc_out, dtype=np.float64)


def acc_lsb_m_s2(acc_range_g: int) -> float:
    return acc_range_g * GRAVITY_M_S2 / 32768.0


def gyr_lsb_rad_s(gyr_range_dps: int) -> float:
    return gyr_range_dps * RAD_PER_DEG / 32768.0


def to_raw(
    gyr_rad_s: FloatArray, acc_m_s2: FloatArray, acc_range_g: int, gyr_range_dps: int
) -> np.ndarray[Any, np.dtype[np.int16]]:
    """Quantise and saturate to int16 ``ax, ay, az, gx, gy, gz`` rows (the wire representation)."""
    acc_raw = np.rint(np.asarray(acc_m_s2) / acc_lsb_m_s2(acc_range_g))
    gyr_raw = np.rint(np.asarray(gyr_rad_s) / gyr_lsb_rad_s(gyr_range_dps))
    raw = np.clip(np.hstack([acc_raw, gyr_raw]), RAW_MIN, RAW_MAX)
    return raw.astype(np.int16)


def from_raw(
    raw: np.ndarray[Any, np.dtype[np.int16]], acc_range_g: int, gyr_range_dps: int
) -> tuple[FloatArray, FloatArray]:
    """int16 rows back to SI ``(gyr_rad_s, acc_m_s2)`` with the spec's scaling."""
    values = np.asarray(raw, dtype=np.float64)
    return values[:, 3:6] * gyr_lsb_rad_s(gyr_range_dps), values[:, 0:3] * acc_lsb_m_s2(acc_range_g)


def finish(
    gyr_rad_s: FloatArray, acc_m_s2: FloatArray, acc_range_g: int, gyr_range_dps: int, quantise: bool
) -> tuple[FloatArray, FloatArray]:
    """The float signals a host would see: saturated at full scale, quantised when ``quantise``."""
    if quantise:
        return from_raw(to_raw(gyr_rad_s, acc_m_s2, acc_range_g, gyr_range_dps), acc_range_g, gyr_range_dps)
    acc_max = acc_range_g * GRAVITY_M_S2
    gyr_max = gyr_range_dps * RAD_PER_DEG
    # Same limits as int16: -32768 LSB exactly full scale, +32767 LSB one step below.
    acc = np.clip(acc_m_s2, -acc_max, acc_max - acc_lsb_m_s2(acc_range_g))
    gyr = np.clip(gyr_rad_s, -gyr_max, gyr_max - gyr_lsb_rad_s(gyr_range_dps))
    return np.asarray(gyr, dtype=np.float64), np.asarray(acc, dtype=np.float64)
