"""``firmware-sim``: record simulated sessions with ground truth, list drills, write population recordings."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sensorhub.errors import SensorhubError

from .athletes import DEFAULT_MOUNT_MAX_DEG, SimulatedAthlete, make_leg_csv_arrays, simulate_motion
from .device import StreamSettings
from .encoder import ACC_RANGES_G, GYR_RANGES_DPS, MAX_SAMPLES_PER_PACKET, RATES_HZ
from .errors_model import PRESETS
from .exceptions import FirmwareSimError
from .link import LINK_PRESETS
from .transports.inprocess import SimSession
from .transports.recording import write_recording
from .truth import write_truth

RECORDING_NAME = "recording.shrec"
RECORD_STEP_S = 0.25  # simulation step when writing files: fewer, larger body-model calls
RECORD_PREFETCH_S = 5.0
DEFAULT_HOST_EPOCH_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z: recordings are reproducible by seed


class CliError(FirmwareSimError):
    """Bad command-line input; the message says which option and what is allowed."""


def parse_faults(text: str) -> dict[str, float]:
    """``"valgus=0.3,stiff_landing=0.2"`` -> ``{"valgus": 0.3, "stiff_landing": 0.2}``."""
    faults: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--faults: expected NAME=VALUE, got {item!r}")
        try:
            faults[name.strip()] = float(value)
        except ValueError:
            raise CliError(f"--faults: {name.strip()} needs a number, got {value!r}") from None
    return faults


def _sides(text: str) -> tuple[str, ...]:
    return ("left", "right") if text == "both" else (text,)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firmware-sim", description="sensorhub sensor simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("drills", help="list the drills the body model simulates")
    ble = sub.add_parser("serve-ble", help="serve simulated sensors as BLE peripherals (Bumble)")
    from .serve_ble import add_arguments as add_serve_ble_arguments

    add_serve_ble_arguments(ble)
    rec = sub.add_parser("record", help="write DIR/recording.shrec plus truth.json and truth_angles.csv")
    rec.add_argument("--drill", required=True)
    rec.add_argument("--out", required=True, type=Path)
    rec.add_argument("--reps", type=int, default=5)
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--sides", choices=("right", "left", "both"), default="right")
    rec.add_argument("--errors", choices=sorted(PRESETS), default="realistic")
    rec.add_argument("--faults", default="", help="e.g. valgus=0.3,stiff_landing=0.2")
    rec.add_argument("--rate-hz", type=int, choices=RATES_HZ, default=200)
    rec.add_argument("--acc-range-g", type=int, choices=ACC_RANGES_G, default=16)
    rec.add_argument("--gyr-range-dps", type=int, choices=GYR_RANGES_DPS, default=2000)
    rec.add_argument(
        "--samples-per-packet",
        type=int,
        choices=range(1, MAX_SAMPLES_PER_PACKET + 1),
        default=8,
        metavar=f"1..{MAX_SAMPLES_PER_PACKET}",
    )
    rec.add_argument("--link", choices=sorted(LINK_PRESETS), default="typical")
    rec.add_argument("--mount-max-deg", type=float, default=DEFAULT_MOUNT_MAX_DEG)
    rec.add_argument("--athlete", default="sim", help="athlete name; sensor ids are NAME-SIDE-SEGMENT")
    rec.add_argument("--standing-s", type=float, default=4.0)
    rec.add_argument(
        "--no-calibration-bends",
        action="store_true",
        help="skip the knee bends after quiet standing (sensorhub calibrates from them)",
    )
    rec.add_argument(
        "--host-epoch-s",
        type=float,
        default=DEFAULT_HOST_EPOCH_S,
        help="host clock at true time 0 in the recording",
    )
    rec.add_argument("--csv", action="store_true", help="also write DIR/imu_{side}.csv for sensorhub analyze")
    pop = sub.add_parser(
        "population",
        help="write one recording of the evaluation population: DIR/imu.csv, truth_angles.csv, truth.json",
    )
    pop.add_argument("--list", action="store_true", help="list the families and the tuning/test seed split")
    pop.add_argument("--seed", type=int, help="the recording's seed (test seeds for reported figures)")
    pop.add_argument("--family", help="fix the family (default: drawn from the seed)")
    pop.add_argument("--out", type=Path)
    return parser


def _list_drills() -> int:
    from .body import DRILLS

    for name in DRILLS:
        print(name)
    return 0


def _record(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    sides = _sides(args.sides)
    faults = parse_faults(args.faults)
    settings = StreamSettings(args.rate_hz, args.acc_range_g, args.gyr_range_dps, args.samples_per_packet)
    motion = simulate_motion(
        args.drill,
        reps=args.reps,
        sides=sides,
        seed=args.seed,
        faults=faults,
        calibration_bends=not args.no_calibration_bends,
        standing_s=args.standing_s,
    )
    athlete = SimulatedAthlete(
        args.athlete,
        motion,
        sides=sides,
        errors=args.errors,
        mount_max_deg=args.mount_max_deg,
        seed=args.seed,
    )
    session = SimSession(
        [athlete],
        settings=settings,
        link=args.link,
        seed=args.seed,
        host_epoch_s=args.host_epoch_s,
        step_s=RECORD_STEP_S,
        prefetch_s=RECORD_PREFETCH_S,
    )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    extra = {"drill": args.drill, "seed": args.seed, "faults": faults, "reps": args.reps}
    n_packets = write_recording(out / RECORDING_NAME, session, extra_meta=extra)
    write_truth(
        out,
        athlete,
        link_stats=session.link_stats(),
        rate_hz=float(args.rate_hz),
        extra={
            "faults": faults,
            "reps": args.reps,
            "host_epoch_s": args.host_epoch_s,
            "link": session.link_params.to_json(),
            "stream": {
                "rate_hz": settings.rate_hz,
                "acc_range_g": settings.acc_range_g,
                "gyr_range_dps": settings.gyr_range_dps,
                "samples_per_packet": settings.samples_per_packet,
            },
        },
    )
    if args.csv:
        for side in sides:
            arrays = make_leg_csv_arrays(
                args.drill,
                side,
                args.seed,
                args.errors,
                args.mount_max_deg,
                rate_hz=float(args.rate_hz),
                link=args.link,
                settings=settings,
                motion=motion,
                athlete_name=args.athlete,
            )
            arrays.write_csv(out / f"imu_{side}.csv")
    lost = sum(s.lost for s in session.link_stats().values())
    sent = sum(s.sent for s in session.link_stats().values())
    print(
        f"{args.drill}: {motion.duration_s:.1f} s, {len(session.sensors)} sensors, "
        f"{n_packets} packets received ({lost}/{sent} lost) -> {out} in {time.perf_counter() - started:.1f} s"
    )
    return 0


def _population(args: argparse.Namespace) -> int:
    from .population import describe, draw_spec, simulate

    if args.list:
        print(describe())
        return 0
    if args.seed is None or args.out is None:
        raise CliError("population: give --seed S and --out DIR (or --list)")
    started = time.perf_counter()
    spec = draw_spec(args.seed, args.family)
    rec = simulate(spec)
    rec.write(args.out)
    counts = ", ".join(
        f"{sum(e['type'] == kind for e in rec.events)} {kind}s" for kind in ("landing", "cut", "rep")
    )
    print(
        f"seed {spec.seed} ({spec.split or 'outside the split'}): {spec.family}, {spec.side} leg, "
        f"{rec.duration_s:.1f} s at {spec.rate_hz:g} Hz ({spec.frontend.sampling}), {counts}, "
        f"{len(rec.curves)} curves, {rec.n_dropped} samples dropped -> {args.out} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "drills":
            return _list_drills()
        if args.command == "serve-ble":
            from .serve_ble import serve_ble_main

            return serve_ble_main(args)
        if args.command == "population":
            return _population(args)
        return _record(args)
    except (FirmwareSimError, SensorhubError) as exc:  # sensorhub's: its config and recording format
        print(f"firmware-sim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
