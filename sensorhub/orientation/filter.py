"""The orientation filter for one sensor (streaming and batch) and for many sensors at once."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntFlag
from typing import Any, cast

import numpy as np
from numba.core.errors import NumbaError
from numpy.typing import NDArray

from sensorhub.errors import InputError
from sensorhub.model import FloatArray
from sensorhub.orientation import _kernels as k
from sensorhub.orientation.params import FilterParams, make_coeffs

FlagArray = NDArray[np.uint8]

# bound once: the streaming path is a few hundred nanoseconds of Python per call
_filter_batch = k.filter_batch
_filter_many = k.filter_many
_STATE = slice(0, k.STATE_SIZE)
_empty = np.empty
_U8 = np.uint8


class Flag(IntFlag):
    """Per-sample diagnostics (bits of the uint8 flag arrays)."""

    INITIALISING = k.FLAG_INITIALISING
    """The inclination is still converging: fewer than tau_acc_s seconds of accelerometer data."""
    AT_REST = k.FLAG_AT_REST
    """Rest detected: the bias is being estimated from the resting angular rate."""
    ACC_REJECTED = k.FLAG_ACC_REJECTED
    """The accelerometer sample was not used (impact, high acceleration, clipping, or hold after it)."""
    CLIPPED = k.FLAG_CLIPPED
    """A gyroscope or accelerometer component is at its full-scale range."""
    GAP = k.FLAG_GAP
    """Input was missing (NaN row or sequence gap) and the orientation was bridged."""


_compiled = False


def ensure_compiled() -> None:
    """Compile (or load from numba's cache) the kernels for float64 C-contiguous arrays, once per process,
    then disable compilation: any other input type takes the wrappers' conversion path, so no call can
    ever stop for the JIT (e.g. on a column slice passed on the live path)."""
    global _compiled
    if _compiled:
        return
    coeffs = make_coeffs(FilterParams(), 100.0)
    rec = np.concatenate([k.initial_state(coeffs), coeffs])
    rows = np.zeros((2, 3))
    rows[:, 2] = 9.81
    k.filter_batch(rec, 1, rows, rows, np.empty((2, 4)), np.empty(2, np.uint8))
    recs = np.stack([rec, rec])
    chunk = np.stack([rows, rows])
    k.filter_many(recs, chunk, chunk, np.array([2, 1], dtype=np.int64), np.array([0, 1], dtype=np.int64),
                  np.empty((2, 2, 4)), np.empty((2, 2), np.uint8))
    for kernel in (k.filter_batch, k.filter_many):
        cast(Any, kernel).disable_compile()
    _compiled = True


def _as_rows(name: str, values: object) -> FloatArray:
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if not arr.flags.writeable:  # read-only buffers (np.frombuffer) are another type to the kernels
        arr = arr.copy()
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"{name} must have shape (N, 3), got {arr.shape}")
    return arr


def _check_out(quat: np.ndarray, flags: np.ndarray) -> None:
    for buf, dtype in ((quat, np.float64), (flags, np.uint8)):
        if buf.dtype != dtype or not buf.flags.c_contiguous or not buf.flags.writeable:
            raise InputError(f"output buffers must be writable C-contiguous {np.dtype(dtype).name} arrays")


def _new_record(params: FilterParams, rate_hz: float) -> FloatArray:
    coeffs = make_coeffs(params, rate_hz)
    return np.concatenate([k.initial_state(coeffs), coeffs])


def _checked_state(state: FloatArray) -> FloatArray:
    arr = np.asarray(state, dtype=np.float64)
    if arr.shape != (k.STATE_SIZE,) or not np.all(np.isfinite(arr)):
        raise InputError(f"state must be a finite float64 array of shape ({k.STATE_SIZE},), from get_state()")
    return arr


class OrientationFilter:
    """6-axis orientation filter of one sensor: quaternions [w, x, y, z] sensor -> earth (z up).

    ``update`` is the streaming entry point (a few samples per call, state carried over);
    ``update_batch`` validates and runs a whole recording. Both run the same kernel, so splitting a
    recording into chunks gives bit-identical output.
    """

    __slots__ = ("_params", "_rate_hz", "_rec")

    def __init__(self, rate_hz: float, params: FilterParams | None = None) -> None:
        self._params = params if params is not None else FilterParams()
        self._rate_hz = float(rate_hz)
        self._rec = _new_record(self._params, self._rate_hz)  # [state | coefficients]
        ensure_compiled()

    @property
    def params(self) -> FilterParams:
        return self._params

    @property
    def rate_hz(self) -> float:
        return self._rate_hz

    def update(self, gyr_rad_s: FloatArray, acc_m_s2: FloatArray, n_missing_before: int = 0,
               out_quat: FloatArray | None = None,
               out_flags: FlagArray | None = None) -> tuple[FloatArray, FlagArray]:
        """Advance by a chunk of (n, 3) rows; returns quaternions (n, 4) and flags (n,).

        ``n_missing_before`` samples lost before this chunk (sequence gap) are bridged first. With
        ``out_quat`` (n, 4) and ``out_flags`` (n,) given, they are filled and returned (no allocation).
        The hot path does no Python validation: the kernel checks shapes, and inputs that are not
        float64 C-contiguous are converted.
        """
        if out_quat is None or out_flags is None:
            n = len(gyr_rad_s)
            out_quat = _empty((n, 4))
            out_flags = _empty(n, _U8)
        missing = int(n_missing_before)
        try:
            status = _filter_batch(self._rec, missing, gyr_rad_s, acc_m_s2, out_quat, out_flags)
        except (TypeError, NumbaError):  # not float64 C-contiguous (compilation is disabled): convert
            _check_out(out_quat, out_flags)
            gyr = _as_rows("gyr_rad_s", gyr_rad_s)
            acc = _as_rows("acc_m_s2", acc_m_s2)
            status = _filter_batch(self._rec, missing, gyr, acc, out_quat, out_flags)
        if status != 0:
            raise InputError(f"gyr_rad_s {np.shape(gyr_rad_s)} and acc_m_s2 {np.shape(acc_m_s2)} must both "
                             f"be (n, 3), out_quat {np.shape(out_quat)} (>= n, 4), out_flags (>= n,)")
        return out_quat, out_flags

    def update_batch(self, gyr_rad_s: FloatArray, acc_m_s2: FloatArray) -> tuple[FloatArray, FlagArray]:
        """Run a whole array (N, 3) of each (NaN rows are gaps); returns quaternions (N, 4) and flags (N,)."""
        gyr = _as_rows("gyr_rad_s", gyr_rad_s)
        acc = _as_rows("acc_m_s2", acc_m_s2)
        if gyr.shape != acc.shape:
            raise InputError(f"gyr_rad_s {gyr.shape} and acc_m_s2 {acc.shape} differ in length")
        n = gyr.shape[0]
        quat = np.empty((n, 4))
        flags = np.empty(n, np.uint8)
        if _filter_batch(self._rec, 0, gyr, acc, quat, flags) != 0:
            raise InputError(f"gyr_rad_s {gyr.shape} and acc_m_s2 {acc.shape} must both be (N, 3)")
        return quat, flags

    # --- state: read, replace, reset
    @property
    def quat(self) -> FloatArray:
        """Latest orientation [w, x, y, z] (identity before the first sample)."""
        return self._rec[k.S_Q6 : k.S_Q6 + 4].copy()

    @property
    def bias_rad_s(self) -> FloatArray:
        """Current gyroscope bias estimate (3,), rad/s."""
        return self._rec[k.S_BIAS : k.S_BIAS + 3].copy()

    @property
    def at_rest(self) -> bool:
        return bool(self._rec[k.S_REST] != 0.0)

    def get_state(self) -> FloatArray:
        """A copy of the filter state (flat float64; the layout belongs to this version of sensorhub)."""
        return self._rec[_STATE].copy()

    def set_state(self, state: FloatArray) -> None:
        """Replace the state with one from ``get_state`` (e.g. to resume a sensor on another worker)."""
        self._rec[_STATE] = _checked_state(state)

    def reset(self) -> None:
        """Back to the state of a freshly constructed filter."""
        self._rec[_STATE] = k.initial_state(self._rec[k.STATE_SIZE :])


class OrientationBank:
    """Many sensors advanced in one compiled call (the live pipeline's entry point).

    Each sensor is one row of an (S, RECORD_SIZE) array. ``update`` takes padded (S, K, 3) chunks and
    the number of valid rows per sensor, so the Python cost per call is independent of S.
    """

    __slots__ = ("_n_missing_zero", "_params", "_recs")

    def __init__(self, n_sensors: int, rate_hz: float | Sequence[float],
                 params: FilterParams | None = None) -> None:
        if n_sensors < 1:
            raise InputError(f"n_sensors must be >= 1, got {n_sensors}")
        self._params = params if params is not None else FilterParams()
        if isinstance(rate_hz, int | float):
            rates = [float(rate_hz)] * n_sensors
        else:
            rates = [float(r) for r in rate_hz]
        if len(rates) != n_sensors:
            raise InputError(f"rate_hz has {len(rates)} entries for {n_sensors} sensors")
        records = {r: _new_record(self._params, r) for r in set(rates)}  # derive once per distinct rate
        self._recs = np.stack([records[r] for r in rates])
        self._n_missing_zero = np.zeros(n_sensors, dtype=np.int64)
        ensure_compiled()

    @property
    def n_sensors(self) -> int:
        return int(self._recs.shape[0])

    @property
    def params(self) -> FilterParams:
        return self._params

    def update(self, gyr_rad_s: FloatArray, acc_m_s2: FloatArray, counts: NDArray[np.int64],
               n_missing_before: NDArray[np.int64] | None = None) -> tuple[FloatArray, FlagArray]:
        """Advance every sensor s by the first ``counts[s]`` rows of gyr/acc (S, K, 3).

        Returns quaternions (S, K, 4) and flags (S, K); rows beyond ``counts[s]`` are undefined.
        ``n_missing_before[s]`` samples lost before sensor s's rows are bridged first.
        """
        shape = gyr_rad_s.shape
        n_s = self._recs.shape[0]
        if len(shape) != 3:
            raise InputError(f"gyr_rad_s and acc_m_s2 must both be ({n_s}, K, 3), got {shape}")
        missing = self._n_missing_zero if n_missing_before is None else n_missing_before
        quat = np.empty((n_s, shape[1], 4))
        flags = np.empty((n_s, shape[1]), np.uint8)
        try:
            status = _filter_many(self._recs, gyr_rad_s, acc_m_s2, counts, missing, quat, flags)
        except (TypeError, NumbaError):  # other dtype or layout: convert once
            gyr = np.array(gyr_rad_s, dtype=np.float64, order="C", copy=True)
            acc = np.array(acc_m_s2, dtype=np.float64, order="C", copy=True)
            status = _filter_many(self._recs, gyr, acc, np.array(counts, dtype=np.int64, copy=True),
                                  np.array(missing, dtype=np.int64, copy=True), quat, flags)
        if status != 0:
            raise InputError(f"gyr_rad_s and acc_m_s2 must both be ({n_s}, K, 3) and counts, "
                             f"n_missing_before ({n_s},) with 0 <= counts <= K and n_missing_before >= 0; "
                             f"got {shape}, {np.shape(acc_m_s2)}, {np.shape(counts)}")
        return quat, flags

    @property
    def quat(self) -> FloatArray:
        """Latest orientation of every sensor (S, 4)."""
        return self._recs[:, k.S_Q6 : k.S_Q6 + 4].copy()

    def get_state(self, sensor: int) -> FloatArray:
        return self._recs[sensor, _STATE].copy()

    def set_state(self, sensor: int, state: FloatArray) -> None:
        self._recs[sensor, _STATE] = _checked_state(state)

    def reset(self, sensor: int | None = None) -> None:
        """Reset one sensor (e.g. after it reconnects) or all of them."""
        rows = range(self.n_sensors) if sensor is None else (sensor,)
        for s in rows:
            self._recs[s, _STATE] = k.initial_state(self._recs[s, k.STATE_SIZE :])
