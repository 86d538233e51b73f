"""The ``sensorhub`` command line. Subcommands import their stage lazily so ``--help`` stays instant."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from firmware_sim.exceptions import FirmwareSimError
from sensorhub import __version__
from sensorhub.config import history_path, load_config
from sensorhub.errors import SensorhubError

log = logging.getLogger("sensorhub")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML configuration file (default: embedded defaults)")


def _add_history(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, default=None, help="history database (default: the configured one)")
    _add_config(p)


def _cmd_report(args: argparse.Namespace) -> int:
    from sensorhub.rehab import report_main

    return report_main(args.athlete, args.out, args.since, args.csv, args.db, args.config)


def _cmd_battery(args: argparse.Namespace) -> int:
    from sensorhub.rehab import battery_main

    return battery_main(args.athlete, args.session, args.db, args.config)


def _cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    n_sensors = sum(len(a.sensors) for a in config.athletes)
    print(
        f"{config.source_file}: ok ({len(config.athletes)} athletes, {n_sensors} sensors, "
        f"source {config.source.kind})"
    )
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from sensorhub.offline import analyze_main

    history = args.history
    if history == "":  # --history without a path: the configured service's history database
        history = history_path(load_config(None))
    return analyze_main(args.input, args.out, args.leg, Path(history) if history else None, args.athlete,
                        report=args.report, mot=args.mot, parquet=args.parquet)


def _cmd_export(args: argparse.Namespace) -> int:
    from sensorhub.offline import export_main

    return export_main(args.athlete, args.out, args.format, args.since, args.session, args.db, args.config)


def _cmd_replay(args: argparse.Namespace) -> int:
    from sensorhub.runtime import replay_main

    speed = None if args.as_fast_as_possible else args.speed
    return replay_main(args.file, speed=speed, csv_dir=args.csv)


# The faces compose the simulator with the runtime (which never imports it): `run`, `record` and
# `gateway` hand it over for ``[source] kind = "simulator"``.


def _cmd_record(args: argparse.Namespace) -> int:
    from sensorhub.demo import simulated_source
    from sensorhub.runtime import record_main

    return record_main(args.config, args.out, args.duration_s, simulator=simulated_source)


def _serving_soon() -> None:
    """A command that will serve: on a cold numba cache, a second process starts compiling now, while
    this one imports the service and sets up its sources."""
    from sensorhub.runtime.warmup import start_parallel_compile

    start_parallel_compile()


def _cmd_demo(args: argparse.Namespace) -> int:
    _serving_soon()
    from sensorhub.demo import demo_main

    return demo_main(args.config, athletes=args.athletes, port=args.port)


def _cmd_run(args: argparse.Namespace) -> int:
    _serving_soon()
    from sensorhub.demo import simulated_source
    from sensorhub.runtime import run_main

    return run_main(args.config, port=args.port, simulator=simulated_source)


def _cmd_gateway(args: argparse.Namespace) -> int:
    from sensorhub.demo import simulated_source
    from sensorhub.runtime import gateway_main

    return gateway_main(args.config, simulator=simulated_source)


def _cmd_scan(args: argparse.Namespace) -> int:
    from sensorhub.sources import scan_main

    return scan_main(
        args.timeout_s,
        args.transport,
        bumble_transport=args.bumble_transport,
        adapter=args.adapter,
        all_devices=args.all,
    )


def _cmd_plan(args: argparse.Namespace) -> int:
    from sensorhub.rehab import plan_main

    return plan_main(
        args.athlete, args.program, args.phase, args.pain_threshold, args.side, args.db, args.config
    )


# Each benchmark's module, with ``add_arguments(parser)`` and ``run(args) -> int``; imported only when
# that benchmark is asked for (they import the bench services, InfluxDB and MQTT clients: ~2 s of a
# `sensorhub demo` start if built into every parser).
BENCHES: dict[str, tuple[str, str]] = {
    "filter": ("sensorhub.bench.filter_bench", "orientation filter throughput vs VQF, imufusion, Madgwick"),
    "accuracy": ("sensorhub.bench.sim_accuracy",
                 "accuracy on BROAD (real data) and/or the simulator population"),
    "latency": ("sensorhub.bench.latency_bench",
                "packet -> angle and condition -> cue latency, live pipeline"),
    "capacity": ("sensorhub.bench.capacity_bench",
                 "sensors per core: real-time ramp through the whole service path"),
    "dashboard": ("sensorhub.bench.dashboard_bench", "ingestion latency with N dashboard clients connected"),
    "startup": ("sensorhub.bench.startup_bench", "seconds from `sensorhub demo` to the first live frame"),
    "influx": ("sensorhub.bench.influx_bench",
               "InfluxDB sink points/s to a local VictoriaMetrics, outage and spool"),
    "mqtt": ("sensorhub.bench.mqtt_bench", "raw packets/s and events/s gateway -> Mosquitto -> worker"),
    "faults": ("sensorhub.bench.faults_bench", "faults injected while athletes stream: what each one lost"),
    "soak": ("sensorhub.bench.soak_bench",
             "the whole service for N minutes: RSS, files, queues, p99 per minute"),
    "events": ("sensorhub.bench.events_accuracy",
               "landing/cut/rep F1, timing, metric errors and cues vs truth"),
}


class _BenchParser(argparse.ArgumentParser):
    """A benchmark's parser: its module's arguments are added when the benchmark is parsed."""

    module = ""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self.module:
            module, self.module = importlib.import_module(self.module), ""
            module.add_arguments(self)
        return super().parse_known_args(args, namespace)


def _cmd_bench(args: argparse.Namespace) -> int:
    return int(importlib.import_module(BENCHES[args.bench][0]).run(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sensorhub",
        description="Real-time knee angles, landing/cut/rep analysis and cues from thigh and shank IMUs.",
    )
    parser.add_argument("--version", action="version", version=f"sensorhub {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="simulated athletes through the live pipeline (no hardware needed)")
    _add_config(p)
    p.add_argument("--athletes", type=int, default=None, help="number of simulated athletes")
    p.add_argument("--port", type=int, default=None, help="dashboard port (default 8765)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("run", help="run the live pipeline from a configuration (BLE, MQTT or simulator)")
    _add_config(p)
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("record", help="record raw packets from the configured source to a file")
    _add_config(p)
    p.add_argument("--out", type=Path, required=True, help="recording file to write (.shrec)")
    p.add_argument("--duration-s", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(func=_cmd_record)

    p = sub.add_parser("replay", help="feed a recording through the live decode path; report per sensor")
    p.add_argument("file", type=Path)
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--speed", type=float, default=1.0, help="replay speed factor (default 1 = real time)")
    speed.add_argument("--as-fast-as-possible", action="store_true")
    p.add_argument("--csv", type=Path, default=None, help="also export each leg to DIR/imu_<leg>.csv")
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser("analyze", help="offline knee angles and events from a CSV or a recording")
    p.add_argument("input", type=Path, help="IMU CSV (see README) or a .shrec recording")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--leg", choices=("right", "left"), default=None, help="leg of a CSV (default right)")
    p.add_argument(
        "--history",
        nargs="?",
        const="",
        default=None,
        metavar="DB",
        help="also store calibration and events as a session in this history database "
        "(without DB: the service's, in service.data_dir)",
    )
    p.add_argument("--athlete", default=None, help="with --history: whose session (default: from input)")
    p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                   help="write DIR/report.html: angles over time with the events, calibration, metrics "
                   "(default: on)")
    p.add_argument("--mot", action="store_true", help="also write DIR/angles.mot (OpenSim motion file)")
    p.add_argument("--parquet", action="store_true",
                   help="also write DIR/angles.parquet and DIR/events.parquet (needs the [parquet] extra)")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("export", help="an athlete's history as Parquet (events, curves) and OpenSim .mot")
    p.add_argument("athlete")
    p.add_argument("--out", type=Path, required=True, help="directory to write into")
    p.add_argument("--format", default="parquet,mot", help="comma-separated: parquet, mot (default both)")
    p.add_argument("--since", default=None, help="only sessions from this date on (YYYY-MM-DD)")
    p.add_argument("--session", default=None, help="only this session id")
    _add_history(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("bench", help="benchmarks: filter speed, accuracy, latency")
    bench = p.add_subparsers(dest="bench", required=True, metavar="BENCH", parser_class=_BenchParser)
    for name, (module, help_text) in BENCHES.items():
        bench.add_parser(name, help=help_text).module = module

    p = sub.add_parser("gateway", help="BLE/simulated sensors -> raw packets on MQTT for `run` workers")
    _add_config(p)
    p.set_defaults(func=_cmd_gateway)

    p = sub.add_parser("plan", help="show or set an athlete's rehab plan (program, phase, pain threshold)")
    p.add_argument("athlete")
    p.add_argument("--program", default=None, help="program name (configs/programs/NAME.toml)")
    p.add_argument("--phase", type=int, default=None, help="phase index, 0 = the first")
    p.add_argument("--pain-threshold", type=int, default=None, help="0-10; above it load is reduced")
    p.add_argument("--side", choices=("left", "right", "both"), default=None, help="involved side")
    _add_history(p)
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("check-config", help="validate a configuration file and exit")
    p.add_argument("file", type=Path)
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("scan", help="list nearby sensors: name, address, RSSI, detected protocol")
    p.add_argument("--timeout-s", type=float, default=5.0, help="how long to listen (default 5 s)")
    p.add_argument(
        "--transport", choices=("bleak", "bumble"), default="bleak", help="BLE stack (default: OS)"
    )
    p.add_argument(
        "--bumble-transport", default=None, help="with --transport bumble, e.g. tcp-client:H:P, usb:0"
    )
    p.add_argument("--adapter", default="", help="BLE adapter, e.g. hci1 (default: the system's)")
    p.add_argument("--all", action="store_true", help="list every advertiser, not only IMUs")
    p.set_defaults(func=_cmd_scan)

    p = sub.add_parser("report", help="self-contained HTML progress report (and CSV) of an athlete")
    p.add_argument("athlete")
    p.add_argument("--out", type=Path, required=True, help="report.html to write")
    p.add_argument("--since", default=None, help="only sessions from this date on (YYYY-MM-DD)")
    p.add_argument("--csv", type=Path, default=None, help="also write every event and metric as CSV")
    _add_history(p)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("battery", help="reassessment battery of a session, compared with the last one")
    p.add_argument("athlete")
    p.add_argument("--session", default=None, help="session id (default: the athlete's latest)")
    _add_history(p)
    p.set_defaults(func=_cmd_battery)

    p = sub.choices["bench"]
    p.set_defaults(func=_cmd_bench)
    return parser


def _progress(args: argparse.Namespace) -> contextlib.AbstractContextManager[object]:
    """A terminal progress bar for the commands that take a while and draw none of their own (analyze,
    report and export draw theirs; the services print their URLs and run until stopped)."""
    from sensorhub.progress import progress, timed

    if args.command == "bench":
        return progress(f"bench {args.bench}")
    if args.command == "replay":
        return progress(f"replay {args.file.name}")
    if args.command == "record":
        return timed(f"record {args.out.name}", args.duration_s)
    if args.command == "scan":
        return timed("scanning", args.timeout_s)
    return contextlib.nullcontext()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        with _progress(args):
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # One line for the user (the traceback with -v); a SensorhubError (or the simulator's own
        # FirmwareSimError) is a user-fixable error (2), anything else a failure the service could not
        # survive (1).
        root = _root_cause(exc)
        if isinstance(root, SensorhubError | FirmwareSimError):
            print(f"sensorhub: error: {root}", file=sys.stderr)
            return 2
        log.debug("unrecoverable error", exc_info=exc)
        first_line = (str(root).strip().splitlines() or [""])[0]
        hint = "" if args.verbose else " (run with -v for the traceback)"
        print(f"sensorhub: failed: {type(root).__name__}: {first_line}{hint}", file=sys.stderr)
        return 1


def _root_cause(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (a TaskGroup wraps the failing task's error)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


if __name__ == "__main__":
    sys.exit(main())
