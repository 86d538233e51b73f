"""Knee kinematics: automatic sensor-to-segment calibration, magnetometer-free relative heading, and
Grood & Suntay knee angles per leg, streaming and batch with identical results (see docs/kinematics.md).

Public API:
- ``KneeEstimator(side, rate_hz, leg_id="", params=None, orientation_factory=None)`` with
  ``push(LegSamples) -> KneeAngles`` and ``finish() -> KneeAngles`` (``step``/``finish_step`` also give
  the rows' ``LegMotion``: segment kinematics for the event detector); ``calibration`` after it succeeded;
- ``estimate_knee(samples, side, rate_hz) -> KneeRun(angles, motion, calibration)`` (offline = one push),
  ``estimate_knee_angles`` its angles and calibration;
- ``repair_after_gaps(samples, angles, side, rate_hz, calibration)``: offline, the flexion of the
  seconds after each loss burst also from a backward pass over the recording;
- ``calibrate_knee(...) -> KneeCalibration`` with its ``CalibrationReport``; ``OneSidedWatch``: live,
  refuses a calibration whose flexion bends both ways (the offline check of ``estimate_knee``, windowed);
- ``warmup()``: compile or load every kernel before the first live sample;
- quality flags (bits of ``KneeAngles.quality``): ``QUALITY_MISSING_INPUT``, ``QUALITY_HEADING_STALE``,
  ``QUALITY_IMPLAUSIBLE``, ``QUALITY_RECOVERING`` (after a long gap: flexion re-anchored on the hinge,
  valgus/rotation held at their pre-gap values).
"""

from sensorhub.kinematics._kernels import FLAG_HEADING_STALE as QUALITY_HEADING_STALE
from sensorhub.kinematics._kernels import FLAG_IMPLAUSIBLE as QUALITY_IMPLAUSIBLE
from sensorhub.kinematics._kernels import FLAG_MISSING_INPUT as QUALITY_MISSING_INPUT
from sensorhub.kinematics._kernels import FLAG_RECOVERING as QUALITY_RECOVERING
from sensorhub.kinematics.calibration import (
    CalibrationParams,
    CalibrationPendingError,
    CalibrationReport,
    KneeCalibration,
    calibrate_knee,
)
from sensorhub.kinematics.gap_repair import repair_after_gaps
from sensorhub.kinematics.heading import HeadingParams
from sensorhub.kinematics.joint_angles import knee_angles_from_rotation, knee_rotation
from sensorhub.kinematics.knee import (
    KneeEstimator,
    KneeParams,
    KneeRun,
    OneSidedWatch,
    OrientationFactory,
    OrientationStream,
    concat_angles,
    concat_motion,
    estimate_knee,
    estimate_knee_angles,
    warmup,
)

__all__ = [
    "QUALITY_HEADING_STALE",
    "QUALITY_IMPLAUSIBLE",
    "QUALITY_MISSING_INPUT",
    "QUALITY_RECOVERING",
    "CalibrationParams",
    "CalibrationPendingError",
    "CalibrationReport",
    "HeadingParams",
    "KneeCalibration",
    "KneeEstimator",
    "KneeParams",
    "KneeRun",
    "OneSidedWatch",
    "OrientationFactory",
    "OrientationStream",
    "calibrate_knee",
    "concat_angles",
    "concat_motion",
    "estimate_knee",
    "estimate_knee_angles",
    "knee_angles_from_rotation",
    "knee_rotation",
    "repair_after_gaps",
    "warmup",
]
