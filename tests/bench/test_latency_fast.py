"""``sensorhub bench latency --fast``: figures on one clock, the simulation outside the timed replay."""

from __future__ import annotations

import argparse
import re

import pytest

from sensorhub.bench import latency_bench


def test_fast_prints_no_negative_figure(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(athletes=1, reps=1, seed=3, fast=True)
    latency_bench.run(args)
    out = capsys.readouterr().out
    numbers = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", out)]
    assert numbers, out
    assert min(numbers) >= 0.0, out
    # Throughput is what --fast measures: packets per second of replay, simulation excluded.
    assert re.search(r"packets/s", out), out
