"""``sensorhub bench soak``, short and small: the rows and the verdict come out and parse (the whole service
with real Mosquitto and VictoriaMetrics on free loopback ports, dashboard clients in a second process)."""

from __future__ import annotations

import math

import pytest

from sensorhub.bench.soak_bench import QUEUES, Sample, parse_verdict, summarize
from sensorhub.cli import main


def _sample(minute: float, rss_mb: float, depth: int = 0, p99_ms: float = 5.0) -> Sample:
    return Sample(minute, rss_mb, 40, 9, dict.fromkeys(QUEUES, depth), 1.0, p99_ms, 390, 400, 20, 0)


def test_the_slope_leaves_out_the_warm_up_and_a_growing_queue_is_named() -> None:
    # 2 MB a minute during the first 2 minutes (warm-up), then 0.05 MB a minute: 0.5 MB per 10 minutes.
    samples = [_sample(m, 100 + 2 * min(m, 2) + 0.05 * max(0, m - 2), depth=100 * m) for m in range(1, 31)]
    summary = summarize(samples, 30.0, 2.0)
    assert summary.warmup_min == 3.0  # 10 % of 30 minutes
    assert math.isclose(summary.rss_slope_mb_per_10min, 0.5, abs_tol=1e-9)
    assert summary.growing == list(QUEUES)  # 100 a minute: at most 1200 in the first third, 3000 in the last
    verdict = parse_verdict(summary.verdict())
    assert verdict["slope"] == 0.5 and verdict["queues"].startswith("growing (source, ")
    flat = summarize([_sample(m, 100.0, depth=50) for m in range(1, 31)], 30.0, 2.0)
    assert flat.growing == [] and parse_verdict(flat.verdict())["queues"] == "flat"


def test_a_short_soak_prints_its_rows_and_a_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "soak", "--minutes", "0.5", "--sensors", "8", "--clients", "3", "--row-s", "5"]
    assert main([*argv, "--warmup-min", "0.1"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(out) if line.split()[:3] == ["min", "RSS_MB", "fds"])
    rows = [line.split() for line in out[header + 1 : header + 7]]
    assert len(rows) == 6
    for row in rows:
        assert len(row) == 4 + len(QUEUES) + 5
        assert float(row[1]) > 50.0  # RSS MB
        assert int(row[2]) > 0 and int(row[3]) > 1  # open files, threads
        assert math.isfinite(float(row[-4]))  # p99: the stream is live, angles come
        assert int(row[-2]) == 3  # every client still connected
        lo, hi = (int(x) for x in row[-3].split("-"))
        assert 0 < lo <= hi  # every client got angle frames in the row
    verdict = parse_verdict(next(line for line in out if line.startswith("soak: RSS slope")))
    assert math.isfinite(verdict["slope"]) and math.isfinite(verdict["p99_last_ms"])
