"""``sensorhub demo`` and the simulator adapter: firmware_sim's athletes composed with the live service.

A face, outside the pipeline: the runtime never imports firmware_sim; this package (with the CLI, the
benches and the tests) composes the two. Modules are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensorhub.lazy import lazy_exports

if TYPE_CHECKING:
    from sensorhub.demo.command import background_demo, demo_main, run_demo
    from sensorhub.demo.simulator import SimulatorSource, fault_rates, simulated_source

__all__ = ["SimulatorSource", "background_demo", "demo_main", "fault_rates", "run_demo", "simulated_source"]

__getattr__ = lazy_exports(
    __name__,
    {
        "background_demo": "command",
        "demo_main": "command",
        "run_demo": "command",
        "SimulatorSource": "simulator",
        "fault_rates": "simulator",
        "simulated_source": "simulator",
    },
)
