"""firmware_sim: simulated sensorhub sensors (body model, IMU errors, device, BLE link, transports).

The sensorhub pipeline never imports this package; tests, benches and ``sensorhub demo`` compose the two.
Every error it raises is a ``FirmwareSimError``.
"""

from __future__ import annotations

from typing import Any

from firmware_sim.exceptions import FirmwareSimError

__all__ = ["FirmwareSimError", "LegCsvArrays", "make_leg_csv_arrays"]
_LAZY = ("LegCsvArrays", "make_leg_csv_arrays")


def __getattr__(name: str) -> Any:
    # Lazy, so that importing firmware_sim.encoder does not pull in the body model.
    if name in _LAZY:
        from . import athletes

        return getattr(athletes, name)
    raise AttributeError(f"module 'firmware_sim' has no attribute {name!r}")
