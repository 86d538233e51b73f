"""firmware_sim: simulated sensorhub sensors (body model, IMU errors, device, BLE link, transports).

The sensorhub pipeline never imports this package; tests, benches and ``sensorhub demo`` compose the two.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LegCsvArrays", "make_leg_csv_arrays"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing firmware_sim.encoder does not pull in the body model.
    if name in __all__:
        from . import athletes

        return getattr(athletes, name)
    raise AttributeError(f"module 'firmware_sim' has no attribute {name!r}")
