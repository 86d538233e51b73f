"""The sensor between the body and its output registers: what one output sample means.

A MEMS IMU samples its transducers much faster than it outputs data; the output data rate (ODR) sample
is then either the instantaneous reading through a digital low-pass (consumer parts: BMI270,
ICM-42688, LSM6DS; bandwidth between ODR/4 and ODR/2) or the integral over the output interval
(Xsens' strapdown integration: each gyro sample is the orientation increment over the interval that
ends at it, divided by the interval; each accelerometer sample the mean specific force over it).

``sample_sensor`` reproduces both on an internal grid of ``M`` points per output interval
(``M = ceil(INTERNAL_RATE_HZ / ODR)``, at least 2):

1. the body model's exact ideal signals and orientation at the internal instants;
2. the error model (``errors_model``) at the internal rate: scale/misalignment, bias, bias drift,
   white noise with the configured density (so the output noise is shaped by the filter, as in a
   real part);
3. clipping at the full-scale range (the ADC saturates before any filtering);
4. ``instant``: a 2nd-order Butterworth low-pass at ``bandwidth_hz``, then every M-th sample (the
   one at the output instant). ``interval_mean``: the trapezoidal mean over each interval, with the
   gyro's ideal part replaced by the exact rotation vector of the orientation increment over the
   interval divided by its length (unless a sample in it clipped), so integrating the output gyro
   reproduces the true orientation change exactly;
5. output saturation and int16 quantisation (``errors_model.finish``).

The accelerometer's interval mean is the mean of the sensor-frame specific force, which differs from a
strapdown velocity increment only in second order (rotation within one interval).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from sensorhub.conventions import GRAVITY_M_S2, RAD_PER_DEG
from sensorhub.errors import SensorhubError
from sensorhub.model import FloatArray

from ._kernels import biquad_columns
from .errors_model import ImuErrorModel, finish

SAMPLINGS = ("instant", "interval_mean")
INTERNAL_RATE_HZ = 1600.0  # internal grid at least this fast: impact content (Hann pulses >= 25 ms) is
# far below its Nyquist frequency, so the interval means and the filter see the signal, not aliases
BLOCK_SAMPLES = 32768  # internal samples per body-model call (memory bound, cost is per sample)


class FrontEndError(SensorhubError):
    """Invalid sensor front-end settings (the message names the field and the allowed values)."""


@dataclass(frozen=True, slots=True)
class FrontEnd:
    """How a sensor turns the physical signal into output samples."""

    sampling: str = "instant"  # "instant" (+ low-pass) or "interval_mean" (Xsens-style)
    bandwidth_hz: float = 0.0  # -3 dB of the low-pass (instant only); 0: no filter
    acc_range_g: int = 16
    gyr_range_dps: int = 2000

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise FrontEndError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.bandwidth_hz < 0.0:
            raise FrontEndError(f"bandwidth_hz must be >= 0, got {self.bandwidth_hz}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class MotionWithOrientation(Protocol):
    def imu_and_orientation(
        self, side: str, segment: str, mount: Any, t_s: FloatArray, wobble: bool = True
    ) -> tuple[FloatArray, FloatArray, FloatArray]: ...


def oversampling(rate_hz: float) -> int:
    """Internal points per output interval."""
    return max(2, math.ceil(INTERNAL_RATE_HZ / rate_hz))


def butterworth2(cutoff_hz: float, rate_hz: float) -> tuple[float, float, float, float, float]:
    """(b0, b1, b2, a1, a2) of a 2nd-order Butterworth low-pass (bilinear transform, prewarped)."""
    if not 0.0 < cutoff_hz < 0.5 * rate_hz:
        raise FrontEndError(f"low-pass cutoff {cutoff_hz} Hz must be in (0, {0.5 * rate_hz}) Hz")
    k = math.tan(math.pi * cutoff_hz / rate_hz)
    norm = 1.0 / (1.0 + math.sqrt(2.0) * k + k * k)
    b0 = k * k * norm
    return b0, 2.0 * b0, b0, 2.0 * (k * k - 1.0) * norm, (1.0 - math.sqrt(2.0) * k + k * k) * norm


def quat_log_rate(q0: FloatArray, q1: FloatArray, dt_s: FloatArray) -> FloatArray:
    """Rotation vector of q0* q1 (body frame) divided by ``dt_s``: the mean rate that integrates
    (exactly, as one rotation) from q0 to q1. Shapes (N, 4), (N, 4), (N,) -> (N, 3)."""
    w0, x0, y0, z0 = q0.T
    w1, x1, y1, z1 = q1.T
    dw = w0 * w1 + x0 * x1 + y0 * y1 + z0 * z1
    dv = np.stack(
        (
            w0 * x1 - x0 * w1 - y0 * z1 + z0 * y1,
            w0 * y1 + x0 * z1 - y0 * w1 - z0 * x1,
            w0 * z1 - x0 * y1 + y0 * x1 - z0 * w1,
        ),
        axis=-1,
    )
    sign = np.where(dw < 0.0, -1.0, 1.0)  # the short way round
    dw, dv = dw * sign, dv * sign[:, None]
    sin_half = np.linalg.norm(dv, axis=1)
    angle = 2.0 * np.arctan2(sin_half, dw)
    scale = np.where(sin_half > 1e-12, angle / np.maximum(sin_half, 1e-300), 2.0)
    return np.asarray(dv * (scale / dt_s)[:, None], dtype=np.float64)


def sample_sensor(
    motion: MotionWithOrientation,
    side: str,
    segment: str,
    mount: Any,
    t_s: FloatArray,
    frontend: FrontEnd,
    errors: ImuErrorModel,
) -> tuple[FloatArray, FloatArray]:
    """(gyro rad/s, specific force m/s^2), each (N, 3) in the sensor frame, as the sensor outputs them
    at its true sample instants ``t_s`` (regularly spaced: its own clock's ticks)."""
    t = np.asarray(t_s, dtype=np.float64)
    if t.ndim != 1 or t.size < 2:
        raise FrontEndError("need at least two sample instants")
    period_s = float(t[1] - t[0])
    m = oversampling(1.0 / period_s)
    n = t.size
    # internal instants: M per output interval, the last of each at the output instant; one interval
    # before the first output sample so that it has a full interval
    t_int = t[0] - period_s + np.arange(n * m + 1) * (period_s / m)
    gyr = np.empty((t_int.size, 3))
    acc = np.empty((t_int.size, 3))
    q_out = np.empty((n + 1, 4))  # orientation at the output instants (and one before)
    for start in range(0, t_int.size, BLOCK_SAMPLES):
        stop = min(start + BLOCK_SAMPLES, t_int.size)
        g, a, q = motion.imu_and_orientation(side, segment, mount, t_int[start:stop])
        gyr[start:stop], acc[start:stop] = g, a
        first = -(-start // m) * m  # first index in the block on the output grid
        q_out[first // m : (stop - 1) // m + 1] = q[first - start :: m]
    ideal_gyr = gyr.copy()
    gyr, acc = errors.apply(gyr, acc, 1.0 / (period_s / m))
    gyr_max = frontend.gyr_range_dps * RAD_PER_DEG
    acc_max = frontend.acc_range_g * GRAVITY_M_S2
    gyr_clip: np.ndarray[Any, np.dtype[np.bool_]] = np.abs(gyr) >= gyr_max
    gyr = np.clip(gyr, -gyr_max, gyr_max)
    acc = np.clip(acc, -acc_max, acc_max)
    if frontend.sampling == "instant":
        if frontend.bandwidth_hz > 0.0:
            coef = butterworth2(frontend.bandwidth_hz, m / period_s)
            gyr = biquad_columns(np.ascontiguousarray(gyr), *coef)
            acc = biquad_columns(np.ascontiguousarray(acc), *coef)
        out_gyr, out_acc = gyr[m::m], acc[m::m]
    else:
        out_gyr = _interval_mean(gyr, m)
        out_acc = _interval_mean(acc, m)
        exact = quat_log_rate(q_out[:-1], q_out[1:], np.full(n, period_s))
        quadrature = _interval_mean(ideal_gyr, m)
        clipped = np.asarray(gyr_clip[1:].reshape(n, m * 3).any(axis=1), dtype=bool)
        correction = (exact - quadrature) @ errors.draw.gyr_matrix.T
        out_gyr = out_gyr + np.where(clipped[:, None], 0.0, correction)
    return finish(out_gyr, out_acc, frontend.acc_range_g, frontend.gyr_range_dps, errors.params.quantise)


def _interval_mean(x: FloatArray, m: int) -> FloatArray:
    """Trapezoidal mean of ``x`` (n*m + 1, 3) over each of the n intervals of m steps."""
    n = (x.shape[0] - 1) // m
    inner = x[1:].reshape(n, m, 3).sum(axis=1) - 0.5 * x[m::m]
    return np.asarray((inner + 0.5 * x[: n * m : m]) / m, dtype=np.float64)
