"""``sensorhub demo`` and the simulator adapter: firmware_sim's athletes composed with the live service.

A face, outside the pipeline: the runtime never imports firmware_sim; this package (with the CLI, the
benches and the tests) composes the two.
"""

from sensorhub.demo.command import background_demo, demo_main, run_demo
from sensorhub.demo.simulator import SimulatorSource, simulated_source

__all__ = ["SimulatorSource", "background_demo", "demo_main", "run_demo", "simulated_source"]
