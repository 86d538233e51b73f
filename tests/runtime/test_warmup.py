"""``warmup()`` compiles (or loads from the cache) every numba kernel of the live path, so the first live
packets never wait for the JIT: after it, a whole recording (calibration, gaps, landings) adds no kernel
signature. Checked in a fresh interpreter, where nothing else has loaded a kernel yet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from firmware_sim.cli import main as firmware_sim_main
from tests.helpers import ROOT

PROBE = """
import sys
from numba.core.registry import CPUDispatcher
from sensorhub.runtime.pipeline import Pipeline
from sensorhub.runtime.warmup import warmup
from sensorhub.recording import read_recording


def overloads():
    out = {}
    for name, mod in list(sys.modules.items()):
        if name.startswith("sensorhub"):
            for obj in list(vars(mod).values()):
                if isinstance(obj, CPUDispatcher):
                    out[obj.py_func.__module__ + "." + obj.py_func.__qualname__] = set(obj.overloads)
    return out


warmup()
recording = read_recording(sys.argv[1])
pipeline = Pipeline(recording.sensors)
before = overloads()
events = 0
for packet in recording.packets():
    events += sum(len(o.events) for o in pipeline.ingest(packet))
events += sum(len(o.events) for o in pipeline.finish())
after = overloads()
late = sorted(k for k, v in after.items() if v - before.get(k, set()))
print("events", events)
print("late", ",".join(late))
"""


def test_nothing_compiles_on_the_live_path_after_warmup(tmp_path: Path) -> None:
    rec_dir = tmp_path / "rec"
    argv = ["record", "--drill", "drop_jump", "--reps", "3", "--seed", "5", "--errors", "realistic"]
    assert firmware_sim_main([*argv, "--link", "poor", "--out", str(rec_dir)]) == 0
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(rec_dir / "recording.shrec")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    lines = dict(line.split(" ", 1) if " " in line else (line, "") for line in done.stdout.splitlines())
    assert int(lines["events"]) >= 2, done.stdout  # the recording really went through calibration + events
    assert lines["late"] == "", f"kernels compiled or loaded after warmup(): {lines['late']}"
