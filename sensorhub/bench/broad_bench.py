"""`sensorhub bench accuracy --broad DIR`: 6-axis inclination error on the BROAD dataset, side by side.

BROAD (Laidig, Caruso, Cereatti, Seel, Data 6(7):72, 2021): real IMU recordings with optical ground
truth. The error metric is the dataset authors': q_err = q_est * conj(q_opt) (earth frame); inclination
error 2 acos(sqrt(w^2 + z^2)) (invariant to the unobservable heading); per trial the RMSE over the
samples flagged ``movement`` with finite ground truth; a group's figure is the mean of its trials.

The peers (vqf, imufusion, ahrs) are benchmark extras: ``pip install -e .[bench]``.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from sensorhub.conventions import DEG_PER_RAD, GRAVITY_M_S2
from sensorhub.errors import InputError
from sensorhub.model import FloatArray
from sensorhub.orientation import FilterParams, OrientationFilter

Estimator = Callable[[FloatArray, FloatArray, float], FloatArray]
"""(gyr_rad_s (N, 3), acc_m_s2 (N, 3), rate_hz) -> quaternions (N, 4) [w, x, y, z] sensor -> earth."""

TUNING_SUBSET = ("01", "03", "05", "07", "09", "11", "15", "21", "25", "27", "29", "31", "33", "35")
"""Trials (odd numbers present here) on which sensorhub's own parameters were chosen; the rest is held out."""

MADGWICK_GAIN = 0.033
"""The ahrs Madgwick gain of the reference table (best-tuned value on these trials)."""


@dataclass(frozen=True, slots=True)
class Trial:
    name: str
    gyr_rad_s: FloatArray
    acc_m_s2: FloatArray
    quat_ref: FloatArray
    movement: np.ndarray
    rate_hz: float

    @property
    def disturbed(self) -> bool:
        return int(self.name[:2]) >= 24


def list_trials(broad_dir: pathlib.Path) -> list[pathlib.Path]:
    """The trial files of a BROAD directory, sorted; InputError when there are none."""
    if not broad_dir.is_dir():
        raise InputError(f"BROAD directory {broad_dir} does not exist (download BROAD and convert it, "
                         f"see the dataset README)")
    files = sorted(broad_dir.glob("[0-9][0-9]_*.npz"))
    if not files:
        raise InputError(f"BROAD directory {broad_dir} holds no NN_name.npz trial files")
    return files


def load_trial(path: pathlib.Path) -> Trial:
    with np.load(path) as data:
        return Trial(
            name=path.stem,
            gyr_rad_s=np.ascontiguousarray(data["imu_gyr"], dtype=np.float64),
            acc_m_s2=np.ascontiguousarray(data["imu_acc"], dtype=np.float64),
            quat_ref=np.asarray(data["opt_quat"], dtype=np.float64),
            movement=np.asarray(data["movement"], dtype=bool),
            rate_hz=float(data["sampling_rate_hz"]),
        )


def inclination_rmse_deg(quat_est: FloatArray, trial: Trial) -> float:
    """The dataset authors' inclination RMSE (degrees) over movement samples with finite ground truth."""
    q_ref = trial.quat_ref
    ok = trial.movement & np.all(np.isfinite(q_ref), axis=1)
    e = quat_est[ok]
    r = q_ref[ok]
    # q_err = q_est * conj(q_ref): only w and z are needed
    w = e[:, 0] * r[:, 0] + e[:, 1] * r[:, 1] + e[:, 2] * r[:, 2] + e[:, 3] * r[:, 3]
    z = -e[:, 0] * r[:, 3] - e[:, 1] * r[:, 2] + e[:, 2] * r[:, 1] + e[:, 3] * r[:, 0]
    wz = np.sqrt(np.clip(w * w + z * z, 0.0, 1.0))
    incl = 2.0 * np.arccos(wz)
    return float(np.sqrt(np.mean(incl**2)) * DEG_PER_RAD)


# --- estimators -----------------------------------------------------------------------------------------
def sensorhub_estimator(params: FilterParams | None = None) -> Estimator:
    def run(gyr: FloatArray, acc: FloatArray, rate_hz: float) -> FloatArray:
        quat, _ = OrientationFilter(rate_hz, params).update_batch(gyr, acc)
        return quat

    return run


def import_peer(name: str) -> ModuleType:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise InputError(f"the benchmark peer '{name}' is not installed: pip install -e .[bench]") from exc


def peer_estimators() -> dict[str, Estimator]:
    """VQF (causal, offline), BasicVQF, imufusion and ahrs Madgwick, all 6-axis."""
    vqf = import_peer("vqf")
    imufusion = import_peer("imufusion")
    ahrs_filters = import_peer("ahrs.filters")

    def vqf_causal(gyr: FloatArray, acc: FloatArray, rate_hz: float) -> FloatArray:
        return np.asarray(vqf.VQF(1.0 / rate_hz).updateBatch(gyr, acc)["quat6D"])

    def vqf_offline(gyr: FloatArray, acc: FloatArray, rate_hz: float) -> FloatArray:
        return np.asarray(vqf.offlineVQF(gyr, acc, None, 1.0 / rate_hz)["quat6D"])

    def basic_vqf(gyr: FloatArray, acc: FloatArray, rate_hz: float) -> FloatArray:
        return np.asarray(vqf.BasicVQF(1.0 / rate_hz).updateBatch(gyr, acc)["quat6D"])

    def fusion(gyr: FloatArray, acc: FloatArray, rate_hz: float) -> FloatArray:
        return imufusion_quats(imufusion, gyr, acc, rate_hz)

    def madgwick(gyr: FloatArray, acc: FloatArray, rate_hz: float) -> FloatArray:
        est = ahrs_filters.Madgwick(gyr=gyr, acc=acc, frequency=rate_hz, gain=MADGWICK_GAIN)
        return np.asarray(est.Q)

    return {
        "VQF (causal)": vqf_causal,
        "VQF offline (acausal)": vqf_offline,
        "BasicVQF": basic_vqf,
        f"Madgwick (ahrs, gain {MADGWICK_GAIN})": madgwick,
        "imufusion (recommended)": fusion,
    }


def imufusion_ahrs(imufusion: ModuleType, rate_hz: float) -> object:
    """x-io Fusion with the settings its README recommends (gain 0.5, 10 deg rejection, 5 s timeout)."""
    ahrs = imufusion.Ahrs()
    ahrs.set_settings(imufusion.AhrsSettings(
        sample_rate=rate_hz,
        convention=imufusion.CONVENTION_NWU,
        gain=0.5,
        gyroscope_range=2000.0,
        acceleration_rejection=10.0,
        magnetic_rejection=10.0,
        rejection_timeout=round(5 * rate_hz),
    ))
    ahrs.set_sample_period(1.0 / rate_hz)
    return ahrs


def imufusion_quats(imufusion: ModuleType, gyr: FloatArray, acc: FloatArray, rate_hz: float) -> FloatArray:
    """The per-sample ``update_no_magnetometer`` loop (Fusion takes deg/s and g)."""
    ahrs = imufusion_ahrs(imufusion, rate_hz)
    gyr_dps = np.ascontiguousarray(gyr * DEG_PER_RAD)
    acc_g = np.ascontiguousarray(acc / GRAVITY_M_S2)
    out = np.empty((gyr.shape[0], 4))
    update = ahrs.update_no_magnetometer  # type: ignore[attr-defined]
    get = ahrs.get_quaternion  # type: ignore[attr-defined]
    for i in range(gyr.shape[0]):
        update(gyr_dps[i], acc_g[i])
        out[i] = get()
    return out


# --- the table ------------------------------------------------------------------------------------------
def evaluate(trials: Sequence[Trial], estimators: dict[str, Estimator]) -> dict[str, list[float]]:
    """Inclination RMSE (deg) of every estimator on every trial."""
    return {
        name: [inclination_rmse_deg(est(t.gyr_rad_s, t.acc_m_s2, t.rate_hz), t) for t in trials]
        for name, est in estimators.items()
    }


def group_means(trials: Sequence[Trial], errors: list[float]) -> tuple[float, float, float]:
    und = [e for t, e in zip(trials, errors, strict=True) if not t.disturbed]
    dis = [e for t, e in zip(trials, errors, strict=True) if t.disturbed]

    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else math.nan

    return mean(und), mean(dis), mean(list(errors))


def format_table(trials: Sequence[Trial], results: dict[str, list[float]], per_trial: bool) -> str:
    names = list(results)
    width = max(len(n) for n in names) + 2
    lines = [f"{'filter':<{width}}{'undisturbed':>12}{'disturbed':>11}{'all':>8}"
             "   (mean inclination RMSE, deg)"]
    for name in names:
        und, dis, both = group_means(trials, results[name])
        lines.append(f"{name:<{width}}{und:>12.3f}{dis:>11.3f}{both:>8.3f}")
    tuned = [t for t in trials if t.name[:2] in TUNING_SUBSET]
    held = [t for t in trials if t.name[:2] not in TUNING_SUBSET]
    lines.append(f"({len(trials)} trials: {sum(not t.disturbed for t in trials)} undisturbed, "
                 f"{sum(t.disturbed for t in trials)} disturbed; sensorhub tuned on {len(tuned)}, "
                 f"{len(held)} held out)")
    if per_trial:
        short = [n.split(" ")[0][:10] for n in names]
        lines.append("")
        lines.append(f"{'trial':<46}" + "".join(f"{s:>11}" for s in short))
        for i, t in enumerate(trials):
            mark = "*" if t.name[:2] in TUNING_SUBSET else " "
            lines.append(f"{t.name[:44]:<44}{mark} " + "".join(f"{results[n][i]:>11.2f}" for n in names))
        lines.append("(* = tuning subset)")
    return "\n".join(lines)


def run_broad(broad_dir: pathlib.Path, per_trial: bool) -> int:
    """Print the accuracy table of this filter and its peers on every BROAD trial in broad_dir."""
    files = list_trials(pathlib.Path(broad_dir))
    peers = peer_estimators()  # fail before the long run when a peer is missing
    trials = [load_trial(f) for f in files]
    estimators: dict[str, Estimator] = {"sensorhub (causal)": sensorhub_estimator()}
    estimators.update(peers)
    results = evaluate(trials, estimators)
    print(format_table(trials, results, per_trial))
    return 0
