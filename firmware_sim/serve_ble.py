"""``firmware-sim serve-ble``: the configured sensors as BLE peripherals, for sensorhub to connect to.
Each speaks its configured ``protocol``: sensorhub's own profile, Movella DOT or MetaMotion.

Reads the same TOML as sensorhub (``[[athletes]]`` with their ``[[athletes.sensors]]``); every sensor is
served under its configured ``name`` (else its id) and ``address`` (else one derived from the name), so
``sensorhub run --config SAME.toml`` with ``source.transport = "bumble"`` finds them.

``--hci tcp-server:127.0.0.1:28700`` (default) serves them on a private Bumble link reachable over
HCI-over-TCP; ``--hci usb:0`` puts ONE sensor on a USB Bluetooth dongle (real radio; choose it with
``--sensor``), which any BLE central, sensorhub on BlueZ included, sees as a real sensor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import sys
from collections.abc import Sequence

import numpy as np

from sensorhub.config import Config, load_config
from sensorhub.conventions import GRAVITY_M_S2
from sensorhub.errors import SensorhubError
from sensorhub.model import FloatArray

from .device import SensorClock, SignalFn, SimulatedDevice
from .errors_model import ImuErrorModel, preset, sensor_seed
from .exceptions import FirmwareSimError
from .transports.ble_peripheral import BlePeripheral, serve_peripherals
from .transports.metamotion_peripheral import MetaMotionPeripheral
from .transports.movella_dot_peripheral import MovellaDotPeripheral

log = logging.getLogger(__name__)

DEFAULT_HCI = "tcp-server:127.0.0.1:28700"
READY_LINE = "serve-ble: ready"
"""Printed (flushed) once every peripheral advertises; scripts and tests wait for it."""


# The GATT profile each configured ``protocol`` is served with.
PERIPHERALS: dict[str, type[BlePeripheral]] = {
    "sensorhub-v1": BlePeripheral,
    "movella-dot": MovellaDotPeripheral,
    "metamotion": MetaMotionPeripheral,
}


class ServeError(FirmwareSimError):
    """The simulator cannot serve what was asked (no sensors configured, one dongle for many sensors)."""


def knee_bend_signal(segment: str, period_s: float = 4.0, phase_s: float = 0.0) -> SignalFn:
    """A simple squat-like pitch motion about the sensor's y axis (gravity only, no linear acceleration):
    the fallback when the body model is not available or not wanted."""
    amplitude_rad = math.radians(70.0 if segment == "shank" else 40.0)
    omega = 2.0 * math.pi / period_s

    def signal(t_s: FloatArray) -> tuple[FloatArray, FloatArray]:
        phase = omega * (t_s + phase_s)
        pitch_rad = amplitude_rad * 0.5 * (1.0 - np.cos(phase))
        rate_rad_s = amplitude_rad * 0.5 * omega * np.sin(phase)
        n = t_s.shape[0]
        gyr = np.zeros((n, 3))
        gyr[:, 1] = rate_rad_s
        acc = np.zeros((n, 3))
        acc[:, 0] = -GRAVITY_M_S2 * np.sin(pitch_rad)
        acc[:, 2] = GRAVITY_M_S2 * np.cos(pitch_rad)
        return gyr, acc

    return signal


def synthetic_device(
    sensor_id: str, segment: str, *, errors: str = "realistic", seed: int = 1
) -> SimulatedDevice:
    rng = np.random.default_rng(sensor_seed(seed, sensor_id))
    return SimulatedDevice(
        sensor_id=sensor_id,
        signal=knee_bend_signal(segment, phase_s=float(rng.uniform(0.0, 0.2))),
        clock=SensorClock.random(rng),
        errors=ImuErrorModel(preset(errors), sensor_seed(seed, sensor_id)),
        battery_start_pct=float(rng.uniform(70.0, 100.0)),
    )


def _body_devices(
    config: Config, drills: Sequence[str], motion_s: float, errors: str, seed: int
) -> dict[str, SimulatedDevice]:
    """Devices driven by the biomechanical body model (one session per athlete), keyed by sensor id."""
    from .athletes import SimulatedAthlete
    from .body import session
    from .body.drills import FAULTS

    faults = dict.fromkeys(FAULTS, config.simulator.fault_rate)
    devices: dict[str, SimulatedDevice] = {}
    for i, athlete in enumerate(config.athletes):
        sides = tuple(sorted({s.side for s in athlete.sensors}))
        # Quiet standing then knee bends first: sensorhub calibrates the sensor mounting from them.
        plan = [("calibration_bends", 3)] + [(drill, 5) for drill in drills]
        motion = session(plan=plan, sides=sides, seed=seed + i, faults=faults, min_duration_s=motion_s)
        sim = SimulatedAthlete(athlete.id, motion, sides=sides, errors=errors, seed=seed + i)
        for sensor in athlete.sensors:
            devices[sensor.id] = sim.device(sim.sensor(sensor.side, sensor.segment))
    return devices


def build_peripherals(
    config: Config,
    *,
    motion: str = "auto",
    drills: Sequence[str] = (),
    motion_s: float = 900.0,
    errors: str = "realistic",
    seed: int = 1,
    only: Sequence[str] = (),
) -> list[BlePeripheral]:
    """One peripheral per configured sensor (or the ``only`` ids). ``motion``: ``body`` (the body model
    looping ``drills``, default ``simulator.drills``, for ``motion_s``; the sensors fall silent after it),
    ``synthetic`` (knee bends, endless) or ``auto`` (body, else synthetic)."""
    sensors = [s for a in config.athletes for s in a.sensors if not only or s.id in only]
    if not sensors:
        raise ServeError(f"{config.source_file}: no sensors to serve (configure [[athletes.sensors]])")
    devices: dict[str, SimulatedDevice] = {}
    if motion in ("auto", "body"):
        try:
            devices = _body_devices(config, drills or config.simulator.drills, motion_s, errors, seed)
        except ImportError as exc:
            if motion == "body":
                raise ServeError(f"the body model is not available: {exc}") from exc
            log.info("body model unavailable (%s); serving synthetic knee bends", exc)
    peripherals = []
    for sensor in sensors:
        device = devices.get(sensor.id)
        if device is None:
            device = synthetic_device(sensor.id, sensor.segment, errors=errors, seed=seed)
        kind = PERIPHERALS.get(sensor.protocol)
        if kind is None:
            raise ServeError(f"sensor {sensor.id}: no simulated peripheral speaks {sensor.protocol!r}; "
                             f"simulated: {', '.join(PERIPHERALS)}")
        peripherals.append(kind(device, name=sensor.name or sensor.id, address=sensor.address))
    return peripherals


async def serve(peripherals: Sequence[BlePeripheral], hci: str, duration_s: float | None = None) -> None:
    async with serve_peripherals(peripherals, hci):
        names = ", ".join(p.name for p in peripherals)
        print(f"{READY_LINE}: {len(peripherals)} peripheral(s) on {hci}: {names}", flush=True)
        if duration_s is None:
            await asyncio.Event().wait()  # until interrupted
        else:
            await asyncio.sleep(duration_s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve-ble`` options (the ``firmware-sim`` CLI adds them to its sub-parser)."""
    parser.add_argument("--config", required=True, help="sensorhub TOML with [[athletes]] and sensors")
    parser.add_argument("--hci", default=DEFAULT_HCI, help=f"Bumble transport (default {DEFAULT_HCI})")
    parser.add_argument("--sensor", action="append", default=[], help="serve only this sensor id (repeat)")
    parser.add_argument("--motion", choices=("auto", "body", "synthetic"), default="auto")
    parser.add_argument("--drill", action="append", default=[], help="drill to loop (repeatable)")
    parser.add_argument("--motion-s", type=float, default=900.0, help="body-model session length")
    parser.add_argument("--errors", choices=("clean", "realistic"), default="realistic")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration-s", type=float, default=None, help="stop after this long (default: run)")


def serve_ble_main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    peripherals = build_peripherals(
        config,
        motion=args.motion,
        drills=args.drill,
        motion_s=args.motion_s,
        errors=args.errors,
        seed=args.seed,
        only=args.sensor,
    )
    if not args.hci.startswith(("tcp-server:", "local")) and len(peripherals) != 1:
        raise ServeError(f"{args.hci} is one radio: pick one sensor with --sensor ID")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way to stop serving
        asyncio.run(serve(peripherals, args.hci, args.duration_s))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="firmware-sim serve-ble", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The virtual controller warns about packets still in flight when a link ends, as a radio drops them.
    logging.getLogger("bumble.controller").setLevel(logging.ERROR)
    try:
        return serve_ble_main(args)
    except (FirmwareSimError, SensorhubError) as exc:  # sensorhub's: a configuration it cannot load
        print(f"firmware-sim serve-ble: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
