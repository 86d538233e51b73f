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


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    run: Callable[[], int]  # processes the samples once, returns how many
    note: str = ""
    repeat: bool = True  # False for the slow pure-Python loops: timed once


def measure(contenders: list[Contender], repeats: int) -> list[Row]:
    """Best samples/s of each contender; repeats are interleaved so load changes hit everyone alike."""
    best = {c.name: float("inf") for c in contenders}
    done = {c.name: 0 for c in contenders}
    for r in range(repeats):
        for c in contenders:
            if r > 0 and not c.repeat:
                continue
            t0 = time.perf_counter()
            done[c.name] = c.run()
            best[c.name] = min(best[c.name], time.perf_counter() - t0)
    return [Row(c.name, done[c.name] / best[c.name], c.note) for c in contenders]


def _ours(gyr: FloatArray, acc: FloatArray, rate_hz: float, chunk: int, n_sensors: int) -> list[Contender]:
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

    bank = OrientationBank(n_sensors, rate_hz)  # built once: construction is not throughput

    def many() -> int:
        for j in range(n_blocks):
            bank.update(gyr_blocks[j], acc_blocks[j], counts)
        return n_blocks * block

    rows = [
        Contender("sensorhub batch (update_batch / estimate)", batch),
        Contender(f"sensorhub streaming, {chunk}-sample chunks", chunked, "new output arrays"),
        Contender(f"sensorhub streaming, {chunk}-sample chunks, out=", chunked_out, "reused output buffers"),
    ]
    if n_blocks > 0:
        rows.append(Contender(f"sensorhub many-sensor ({n_sensors} x {chunk}-sample packets)", many))
    return rows


def _peers(gyr: FloatArray, acc: FloatArray, rate_hz: float, chunk: int,
           madgwick_samples: int) -> list[Contender]:
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
        Contender("VQF C++ causal updateBatch", vqf_batch),
        Contender(f"VQF C++ causal, {chunk}-sample chunks", vqf_chunks(chunk)),
    ]
    if chunk != 10:
        rows.append(Contender("VQF C++ causal, 10-sample chunks", vqf_chunks(10)))
    rows += [
        Contender("VQF offlineVQF (acausal)", vqf_offline),
        Contender("imufusion update_no_magnetometer loop", fusion, repeat=False),
        Contender("ahrs Madgwick (Python)", madgwick, f"{m} samples", repeat=False),
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
    peers = _peers(gyr, acc, args.rate_hz, args.chunk, args.madgwick_samples)
    ours = _ours(gyr, acc, args.rate_hz, args.chunk, args.sensors)
    rows = measure(ours + peers, args.repeats)
    by_name = {r.name: r for r in rows}
    vqf_batch = by_name[peers[0].name].samples_per_s
    vqf_chunk = by_name[peers[1].name].samples_per_s
    many = [r for r in rows if r.name.startswith("sensorhub many-sensor")]
    if many:  # what 200 Hz sensors cost the live path
        live = args.sensors * 200.0
        idx = rows.index(many[0])
        rate = many[0].samples_per_s
        note = (f"{args.sensors} sensors x 200 Hz = {100.0 * live / rate:.1f} % of a core, "
                f"{1e6 * args.chunk / rate:.2f} us per sensor and packet")
        rows[idx] = Row(many[0].name, rate, note)
    print(f"{args.samples} samples at {args.rate_hz:g} Hz, one core, best of {args.repeats} (interleaved)")
    print(format_table(rows, vqf_batch, vqf_chunk))
    return 0
