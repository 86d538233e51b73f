"""`sensorhub bench filter`: throughput of the orientation filter and its peers on the same samples.

Everything runs in one process on one core, on one synthetic recording (smooth random rotation,
linear accelerations, sensor noise and a gyroscope bias), best of a few repeats. Peers are benchmark
extras (``pip install -e .[bench]``): VQF (C++ ``updateBatch`` as a batch and in chunks, ``offlineVQF``),
imufusion (per-sample ``Ahrs.update_no_magnetometer`` loop) and ahrs Madgwick (pure Python, timed on a
shorter slice).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sensorhub.conventions import GRAVITY_M_S2
from sensorhub.model import FloatArray
from sensorhub.orientation import OrientationBank, OrientationFilter, warmup

_SEED = 20231


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    samples_per_s: float
    note: str = ""


def synthetic_imu(n_samples: int, rate_hz: float, seed: int = _SEED) -> tuple[FloatArray, FloatArray]:
    """A plausible IMU recording: smooth random rotation (up to a few rad/s), linear accelerations up
    to ~1 g, noise, a constant gyro bias. Returns gyr (N, 3) rad/s and acc (N, 3) m/s^2, sensor frame."""
    rng = np.random.default_rng(seed)
    dt_s = 1.0 / rate_hz
    # smoothed noise -> angular velocity and linear acceleration in the earth frame
    kernel = np.hanning(int(0.4 * rate_hz) + 1)
    kernel /= kernel.sum()

    def smooth(scale: float) -> FloatArray:
        raw = rng.normal(0.0, 1.0, (n_samples + kernel.size, 3))
        out = np.stack([np.convolve(raw[:, j], kernel, mode="valid")[:n_samples] for j in range(3)], axis=1)
        return np.ascontiguousarray(out * scale / out.std())

    gyr_true = smooth(1.5)
    lin_acc_earth = smooth(3.0)
    quat = np.empty((n_samples, 4))
    q = np.array([1.0, 0.0, 0.0, 0.0])
    for i in range(n_samples):  # plain strapdown, once per run
        w = gyr_true[i]
        angle = float(np.linalg.norm(w)) * dt_s
        axis = w / max(float(np.linalg.norm(w)), 1e-12)
        d = np.r_[np.cos(angle / 2), np.sin(angle / 2) * axis]
        q = np.array([
            q[0] * d[0] - q[1] * d[1] - q[2] * d[2] - q[3] * d[3],
            q[0] * d[1] + q[1] * d[0] + q[2] * d[3] - q[3] * d[2],
            q[0] * d[2] - q[1] * d[3] + q[2] * d[0] + q[3] * d[1],
            q[0] * d[3] + q[1] * d[2] - q[2] * d[1] + q[3] * d[0],
        ])
        q /= np.linalg.norm(q)
        quat[i] = q
    f_earth = lin_acc_earth + np.array([0.0, 0.0, GRAVITY_M_S2])
    w, x, y, z = quat.T
    # rotate earth -> sensor with the transpose of R(q)
    rot = np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (w * y + x * z)], axis=-1),
        np.stack([2 * (w * z + x * y), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
        np.stack([2 * (x * z - w * y), 2 * (w * x + y * z), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=1)
    acc = np.einsum("nji,nj->ni", rot, f_earth) + rng.normal(0.0, 0.05, (n_samples, 3))
    gyr = gyr_true + np.array([0.01, -0.007, 0.004]) + rng.normal(0.0, 0.005, (n_samples, 3))
    return np.ascontiguousarray(gyr), np.ascontiguousarray(acc)


def _best_rate(fn: Callable[[], int], repeats: int) -> float:
    best = float("inf")
    n_done = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n_done = fn()
        best = min(best, time.perf_counter() - t0)
    return n_done / best


def _ours(gyr: FloatArray, acc: FloatArray, rate_hz: float, chunk: int, n_sensors: int,
          repeats: int) -> list[Row]:
    n = gyr.shape[0]

    def batch() -> int:
        OrientationFilter(rate_hz).update_batch(gyr, acc)
        return n

    n_chunked = n - n % chunk

    def chunked() -> int:
        filt = OrientationFilter(rate_hz)
        update = filt.update
        for i in range(0, n_chunked, chunk):
            update(gyr[i : i + chunk], acc[i : i + chunk])
        return n_chunked

    out_q = np.empty((chunk, 4))
    out_f = np.empty(chunk, np.uint8)

    def chunked_out() -> int:
        filt = OrientationFilter(rate_hz)
        update = filt.update
        for i in range(0, n_chunked, chunk):
            update(gyr[i : i + chunk], acc[i : i + chunk], 0, out_q, out_f)
        return n_chunked

    block = n_sensors * chunk
    n_blocks = n // block
    gyr_blocks = gyr[: n_blocks * block].reshape(n_blocks, n_sensors, chunk, 3)
    acc_blocks = acc[: n_blocks * block].reshape(n_blocks, n_sensors, chunk, 3)
    counts = np.full(n_sensors, chunk, dtype=np.int64)

    def many() -> int:
        bank = OrientationBank(n_sensors, rate_hz)
        for j in range(n_blocks):
            bank.update(gyr_blocks[j], acc_blocks[j], counts)
        return n_blocks * block

    rows = [
        Row("sensorhub batch (update_batch / estimate)", _best_rate(batch, repeats)),
        Row(f"sensorhub streaming, {chunk}-sample chunks", _best_rate(chunked, repeats), "new output arrays"),
        Row(f"sensorhub streaming, {chunk}-sample chunks, out=", _best_rate(chunked_out, repeats),
            "reused output buffers"),
    ]
    if n_blocks > 0:
        rate = _best_rate(many, repeats)
        live = n_sensors * 200.0
        rows.append(Row(f"sensorhub many-sensor ({n_sensors} x {chunk}-sample packets)", rate,
                        f"{n_sensors} sensors x 200 Hz = {100.0 * live / rate:.1f} % of a core, "
                        f"{1e6 * n_sensors * chunk / rate / n_sensors:.2f} us/sensor/packet"))
    return rows


def _peers(gyr: FloatArray, acc: FloatArray, rate_hz: float, chunk: int, repeats: int,
           madgwick_samples: int) -> list[Row]:
    from sensorhub.bench.broad_bench import import_peer, imufusion_quats

    vqf = import_peer("vqf")
    imufusion = import_peer("imufusion")
    ahrs_filters = import_peer("ahrs.filters")
    n = gyr.shape[0]
    ts_s = 1.0 / rate_hz

    def vqf_batch() -> int:
        vqf.VQF(ts_s).updateBatch(gyr, acc)
        return n

    def vqf_chunks(size: int) -> Callable[[], int]:
        n_chunked = n - n % size

        def run() -> int:
            est = vqf.VQF(ts_s)
            update = est.updateBatch
            for i in range(0, n_chunked, size):
                update(gyr[i : i + size], acc[i : i + size])
            return n_chunked

        return run

    def vqf_offline() -> int:
        vqf.offlineVQF(gyr, acc, None, ts_s)
        return n

    def fusion() -> int:
        imufusion_quats(imufusion, gyr, acc, rate_hz)
        return n

    m = min(madgwick_samples, n)

    def madgwick() -> int:
        ahrs_filters.Madgwick(gyr=gyr[:m], acc=acc[:m], frequency=rate_hz, gain=0.033)
        return m

    rows = [
        Row("VQF C++ causal updateBatch", _best_rate(vqf_batch, repeats)),
        Row(f"VQF C++ causal, {chunk}-sample chunks", _best_rate(vqf_chunks(chunk), repeats)),
    ]
    if chunk != 10:
        rows.append(Row("VQF C++ causal, 10-sample chunks", _best_rate(vqf_chunks(10), repeats)))
    rows += [
        Row("VQF offlineVQF (acausal)", _best_rate(vqf_offline, repeats)),
        Row("imufusion update_no_magnetometer loop", _best_rate(fusion, 1)),
        Row("ahrs Madgwick (Python)", _best_rate(madgwick, 1), f"{m} samples"),
    ]
    return rows


def format_table(rows: list[Row], vqf_batch: float, vqf_chunk: float) -> str:
    width = max(len(r.name) for r in rows) + 2
    lines = [f"{'filter':<{width}}{'samples/s':>12}{'x VQF batch':>13}{'x VQF chunk':>13}  note"]
    for r in rows:
        lines.append(f"{r.name:<{width}}{r.samples_per_s / 1e6:>11.2f}M{r.samples_per_s / vqf_batch:>13.2f}"
                     f"{r.samples_per_s / vqf_chunk:>13.2f}  {r.note}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=400_000, help="samples in the synthetic recording")
    parser.add_argument("--rate-hz", type=float, default=200.0, help="sampling rate of the recording")
    parser.add_argument("--chunk", type=int, default=8, help="samples per streaming call (a BLE packet)")
    parser.add_argument("--sensors", type=int, default=1000, help="sensors in the many-sensor run")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (best is reported)")
    parser.add_argument("--madgwick-samples", type=int, default=20_000,
                        help="samples for the (slow, pure Python) ahrs Madgwick run")


def run(args: argparse.Namespace) -> int:
    """Print the throughput table; returns 0."""
    warmup()  # compile or load the kernels before anything is timed
    gyr, acc = synthetic_imu(args.samples, args.rate_hz)
    peers = _peers(gyr, acc, args.rate_hz, args.chunk, args.repeats, args.madgwick_samples)
    ours = _ours(gyr, acc, args.rate_hz, args.chunk, args.sensors, args.repeats)
    vqf_batch = peers[0].samples_per_s
    vqf_chunk = peers[1].samples_per_s
    print(f"{args.samples} samples at {args.rate_hz:g} Hz, one core, best of {args.repeats}")
    print(format_table(ours + peers, vqf_batch, vqf_chunk))
    return 0
