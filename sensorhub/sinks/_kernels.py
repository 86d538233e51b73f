"""Numba kernels of the InfluxDB sink: knee-angle rows -> line protocol bytes, many blocks per call.

The bytes must equal what ``influxdb_client.Point`` writes for the same point (``point_line``): floats as
Python's ``repr`` (the shortest decimal that reads back to the same double; of those, the closest) with a
trailing ``.0`` cut, ints as ``<n>i``, fields in name order, a non-finite float left out.

Shortest digits, exactly, in 64/128-bit integers: a double is v = m 2^e; the doubles' rounding interval
around it, in units of 2^(e-2), is [4m - 2 (or - 1 below a power of two), 4m + 2] (ends included when m
is even, as the reader rounds half to even). Scaled by 10^k (k chosen so the values have 17 integer
digits) and divided by 2^(2 - e), with the remainders kept, the interval's ends and v become integers
plus exact "was there a fraction" flags. The shortest representation is the coarsest unit 10^t with a
multiple of it in the interval (found by taking one digit off at a time); of those multiples, the one
nearest v. Anything outside this exact
range (|v| < 1e-4 or >= 1e16, which Python writes in exponent form anyway, subnormals, an exact tie,
a timestamp past int64) is reported back undone: the caller writes that row with ``point_line``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sensorhub.jit import njit

_U64 = np.uint64
_MASK32 = np.uint64(0xFFFFFFFF)
_MAX_K = 21  # 10^21 < 2^70: (4m + 2) 10^k < 2^125 stays in 128 bits
_POW10_LO = np.array([(10**k) & 0xFFFFFFFFFFFFFFFF for k in range(_MAX_K + 1)], dtype=np.uint64)
_POW10_HI = np.array([(10**k) >> 64 for k in range(_MAX_K + 1)], dtype=np.uint64)
_TEN16 = np.uint64(10**16)
_LOG10_2 = math.log10(2.0)
_RAD_TO_DEG = 180.0 / math.pi  # what math.degrees multiplies by (CPython: 180.0 / Py_MATH_PI)
_NS_PER_S = 1e9
_MAX_NS = 9.2e18  # below 2^63: int64 holds the rounded product

# cached on disk; the GIL released (the conversion may run in a worker thread); numpy's error model
_JIT: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(inline="always", **_JIT)
def _mul_64x64(a: np.uint64, b: np.uint64) -> tuple[np.uint64, np.uint64]:
    """(high, low) 64-bit halves of the 128-bit product."""
    a_lo, a_hi = a & _MASK32, a >> _U64(32)
    b_lo, b_hi = b & _MASK32, b >> _U64(32)
    ll, lh, hl, hh = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    mid = (ll >> _U64(32)) + (lh & _MASK32) + (hl & _MASK32)
    return hh + (lh >> _U64(32)) + (hl >> _U64(32)) + (mid >> _U64(32)), (mid << _U64(32)) | (ll & _MASK32)


@njit(inline="always", **_JIT)
def _scaled(x: np.uint64, k: int, s: int) -> tuple[np.uint64, bool, int]:
    """floor(x 10^k / 2^s) for 1 <= s <= 127 (the caller keeps it below 2^64), whether the division was
    exact, and the sign of (its fraction - 1/2)."""
    hi, lo = _mul_64x64(x, _POW10_LO[k])
    hi += x * _POW10_HI[k]
    us = _U64(s)
    if s < 64:
        q = (hi << (_U64(64) - us)) | (lo >> us) if s > 0 else lo
        rem_lo, rem_hi = lo & ((_U64(1) << us) - _U64(1)), _U64(0)
    elif s == 64:
        q, rem_lo, rem_hi = hi, lo, _U64(0)
    else:
        q = hi >> (us - _U64(64))
        rem_lo, rem_hi = lo, hi & ((_U64(1) << (us - _U64(64))) - _U64(1))
    exact = rem_lo == 0 and rem_hi == 0
    # half = 2^(s-1): compare the remainder with it
    if s - 1 < 64:
        half_lo, half_hi = _U64(1) << _U64(s - 1), _U64(0)
    else:
        half_lo, half_hi = _U64(0), _U64(1) << _U64(s - 65)
    if rem_hi != half_hi:
        cmp = 1 if rem_hi > half_hi else -1
    elif rem_lo != half_lo:
        cmp = 1 if rem_lo > half_lo else -1
    else:
        cmp = 0
    return q, exact, cmp


@njit(inline="always", **_JIT)
def _write_digits(buf: np.ndarray, pos: int, n: np.uint64) -> int:
    """Decimal digits of n at buf[pos:]; returns the end."""
    nd = 1
    probe = n
    while probe >= _U64(10):
        probe //= _U64(10)
        nd += 1
    end = pos + nd
    for i in range(nd):
        buf[end - 1 - i] = 48 + np.uint8(n % _U64(10))
        n //= _U64(10)
    return end


@njit(inline="always", **_JIT)
def _write_int(buf: np.ndarray, pos: int, value: np.int64) -> int:
    if value < 0:
        buf[pos] = 45  # '-'
        pos += 1
        return _write_digits(buf, pos, _U64(0) - _U64(value))
    return _write_digits(buf, pos, _U64(value))


@njit(inline="always", **_JIT)
def _n_digits(n: np.uint64) -> int:
    nd = 1
    while n >= _U64(10):
        n //= _U64(10)
        nd += 1
    return nd


@njit(**_JIT)
def write_float(buf: np.ndarray, pos: int, x: float) -> int:
    """Python's repr of a finite float with a trailing ``.0`` cut, at buf[pos:]; returns the end, or -1
    when this value is outside the exact range (nothing meaningful written)."""
    if x == 0.0:  # "0" / "-0"
        if math.copysign(1.0, x) < 0.0:
            buf[pos] = 45
            pos += 1
        buf[pos] = 48
        return pos + 1
    ax = abs(x)
    if not (1e-4 <= ax < 1e16):
        return -1
    mantissa, exponent = math.frexp(ax)  # ax = mantissa 2^exponent, mantissa in [0.5, 1): exact
    m = _U64(mantissa * 9007199254740992.0)  # 2^53: v = m 2^(exponent - 53)
    s = 55 - exponent  # the interval in units of 2^(exponent - 55): divide by 2^s after scaling
    below = _U64(1) if m == _U64(1) << _U64(52) else _U64(2)  # half the gap below a power of two
    inclusive = (m & _U64(1)) == 0
    # 10^k brings v to 17 or 18 integer digits: floor(log10(v)) is this estimate or one more
    k = 16 - math.floor((exponent - 1) * _LOG10_2)
    c, c_exact, c_cmp = _scaled(_U64(4) * m, k, s)
    if c < _TEN16:  # (never, unless the estimate's rounding went up: then one digit more)
        k += 1
        if k > _MAX_K:
            return -1
        c, c_exact, c_cmp = _scaled(_U64(4) * m, k, s)
    b, b_exact, _ = _scaled(_U64(4) * m + _U64(2), k, s)
    a, a_exact, _ = _scaled(_U64(4) * m - below, k, s)

    # the coarsest unit 10^t with a multiple of it inside [a, b], one digit off a, b and c at a time
    # (a division by a constant): aq = a // 10^t, a_whole: a / 10^t is an integer; the same for b; for
    # c its last removed digit and whether every digit removed below that one was 0
    t = -1
    aq, bq, cq = a, b, c
    a_whole, b_whole = a_exact, b_exact
    digit, lower_zero = -1, True
    lo_best, hi_best, c_best, digit_best, lower_zero_best = _U64(0), _U64(0), _U64(0), -1, True
    while True:
        hi_n = bq - _U64(1) if b_whole and not inclusive else bq  # b_whole implies bq > 0 (b > 0)
        lo_n = aq if a_whole and inclusive else aq + _U64(1)
        if lo_n > hi_n:
            break
        t += 1
        lo_best, hi_best, c_best, digit_best, lower_zero_best = lo_n, hi_n, cq, digit, lower_zero
        a_whole = a_whole and aq % _U64(10) == _U64(0)
        aq //= _U64(10)
        b_whole = b_whole and bq % _U64(10) == _U64(0)
        bq //= _U64(10)
        lower_zero = lower_zero and digit <= 0
        digit = int(cq % _U64(10))
        cq //= _U64(10)
    if t < 0:
        return -1
    # the multiple of 10^t nearest v (an exact tie is not decided here)
    n = c_best
    if t == 0:
        if c_cmp == 0:
            return -1
        up = c_cmp > 0
    elif digit_best == 5 and lower_zero_best:
        if c_exact:
            return -1
        up = True
    else:
        up = digit_best >= 5
    if up:
        n += _U64(1)
    n = min(max(n, lo_best), hi_best)

    # the digits with the decimal point where Python's repr puts it (fixed notation: -4 < decpt <= 16)
    nd = _n_digits(n)
    decpt = nd + t - k
    if decpt <= -4 or decpt > 16:
        return -1
    if x < 0.0:
        buf[pos] = 45
        pos += 1
    if decpt <= 0:  # 0.000ddd
        buf[pos] = 48
        buf[pos + 1] = 46
        pos += 2
        for _ in range(-decpt):
            buf[pos] = 48
            pos += 1
        return _write_digits(buf, pos, n)
    if decpt >= nd:  # ddd000 (the ".0" cut)
        pos = _write_digits(buf, pos, n)
        for _ in range(decpt - nd):
            buf[pos] = 48
            pos += 1
        return pos
    end = pos + nd + 1  # dd.ddd, written from the last digit
    j = end
    for i in range(nd):
        if i == nd - decpt:
            j -= 1
            buf[j] = 46
        j -= 1
        buf[j] = 48 + np.uint8(n % _U64(10))
        n //= _U64(10)
    return end


@njit(inline="always", **_JIT)
def _write_bytes(buf: np.ndarray, pos: int, src: np.ndarray) -> int:
    buf[pos : pos + src.shape[0]] = src
    return pos + src.shape[0]


@njit(inline="always", **_JIT)
def _write_field(buf: np.ndarray, pos: int, name: np.ndarray, deg: float) -> int:
    """``name`` then ``deg`` when it is finite (else nothing); -1 for a float write_float cannot write."""
    if not math.isfinite(deg):
        return pos
    return write_float(buf, _write_bytes(buf, pos, name), deg)


def _ascii(text: str) -> np.ndarray:
    return np.array(list(text.encode()), dtype=np.uint8)


_FLEXION = _ascii("flexion_deg=")
_QUALITY = _ascii("quality=")
_ROTATION = _ascii(",rotation_deg=")
_VALGUS = _ascii(",valgus_deg=")
ROW_BYTES = 3 * 40 + 32 + 32  # a row past its prefix: 3 named floats (<= 24 chars each), quality, time


@njit(**_JIT)
def knee_angle_rows(
    prefixes: np.ndarray,  # uint8: every block's "knee_angles,<tags> " back to back
    prefix_ends: np.ndarray,  # int64 (n_blocks,)
    row_block: np.ndarray,  # int64 (n,): the block (prefix) of each row
    t_s: np.ndarray,
    flexion_rad: np.ndarray,
    valgus_rad: np.ndarray,
    rotation_rad: np.ndarray,
    quality: np.ndarray,  # int64
    buf: np.ndarray,  # uint8, at least sum of (prefix + ROW_BYTES) per row
    line_ends: np.ndarray,  # int64 (n,) out: end of each row's line in buf
) -> int:
    """Writes the rows' lines into buf; returns the number of rows left undone (empty lines, marked by
    line_ends[i] == line_ends[i - 1]) that the caller writes the slow way."""
    pos = 0
    undone = 0
    for i in range(t_s.shape[0]):
        start = pos
        t_ns = t_s[i] * _NS_PER_S
        ok = math.isfinite(t_ns) and abs(t_ns) < _MAX_NS
        if ok:
            block = row_block[i]
            first = prefix_ends[block - 1] if block > 0 else 0
            pos = _write_bytes(buf, pos, prefixes[first : prefix_ends[block]])
            end = _write_field(buf, pos, _FLEXION, flexion_rad[i] * _RAD_TO_DEG)
            ok = end >= 0
            if ok and end > pos:
                buf[end] = 44  # ','
                end += 1
            pos = end
        if ok:
            pos = _write_bytes(buf, pos, _QUALITY)
            pos = _write_int(buf, pos, quality[i])
            buf[pos] = 105  # 'i'
            pos = _write_field(buf, pos + 1, _ROTATION, rotation_rad[i] * _RAD_TO_DEG)
            ok = pos >= 0
        if ok:
            pos = _write_field(buf, pos, _VALGUS, valgus_rad[i] * _RAD_TO_DEG)
            ok = pos >= 0
        if ok:
            buf[pos] = 32  # ' '
            pos = _write_int(buf, pos + 1, np.int64(np.rint(t_ns)))
            buf[pos] = 10  # '\n'
            pos += 1
        else:
            pos = start
            undone += 1
        line_ends[i] = pos
    return undone
