"""``sensorhub bench faults``: its matching, and its cheapest faults end to end (real Mosquitto and
VictoriaMetrics on free loopback ports, the real service with every sink on)."""

from __future__ import annotations

import argparse

from sensorhub.bench.fault_ledger import unmatched
from sensorhub.bench.faults_bench import Row, add_arguments, run_faults

EVENT_KINDS = ("history events", "MQTT events", "InfluxDB events")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_a_duplicate_output_does_not_hide_a_lost_one() -> None:
    expected = [("a/right", "rep", 1.0), ("a/right", "rep", 2.0), ("a/left", "rep", 1.0)]
    got = [("a/right", "rep", 1.0004), ("a/right", "rep", 1.0004), ("a/left", "landing", 1.0)]
    assert unmatched(expected, got) == [("a/right", "rep", 2.0), ("a/left", "rep", 1.0)]


def test_an_output_outside_the_tolerance_is_not_a_match() -> None:
    assert unmatched([("a/right", "rep", 1.0)], [("a/right", "rep", 1.01)]) == [("a/right", "rep", 1.0)]


def _only_dropped_window_lost(row: Row) -> None:
    dropped = row.counters["packets dropped by the link"]
    assert 40 <= dropped <= 60  # 2 s of one sensor at 25 packets/s (200 Hz, 8 samples a packet)
    for kind in ("packets processed", "packets recorded"):
        assert row.lost[kind][0] == dropped, kind
    for kind, (lost, _) in row.lost.items():
        if not kind.startswith("packets"):
            assert lost == 0, kind


def test_link_drop_loses_only_the_dropped_window_and_an_influx_outage_nothing() -> None:
    rows = run_faults(
        _args(
            "--quick",
            "--athletes",
            "2",
            "--only",
            "link_drop",
            "--only",
            "influx_down",
            "--influx-down-s",
            "3",
        )
    )
    by_fault = {r.fault: r for r in rows}
    link, influx = by_fault["link_drop"], by_fault["influx_down"]
    for row in rows:
        assert row.serving, row
        assert row.lost["history events"][1] > 0, "no events: nothing was measured"
        assert row.lost["InfluxDB points"][1] > 0
        assert row.ok, row
    _only_dropped_window_lost(link)
    assert influx.counters["points spooled"] > 0  # the outage was seen: points went through the spool
    assert all(lost == 0 for lost, _ in influx.lost.values()), influx.lost


def test_a_silent_network_drop_is_noticed_within_the_keepalive_and_a_dead_worker_is_replaced() -> None:
    rows = run_faults(_args("--quick", "--athletes", "2", "--only", "silent_drop", "--only", "worker_kill"))
    by_fault = {r.fault: r for r in rows}
    silent, worker = by_fault["silent_drop"], by_fault["worker_kill"]
    for row in rows:
        assert row.serving, row
        assert row.ok, row
    assert silent.lost["MQTT events"][1] > 0, "no events: nothing was measured"
    assert silent.lost["MQTT events"][0] == silent.lost["MQTT messages the sink gave up on"][0] == 0
    assert silent.lost["not detected within 16 s"] == (0, 1)  # keepalive 15 s
    lost, sent = worker.lost["raw packets of the other athletes"]
    assert lost == 0 and sent > 0
    # the dead worker's athletes lose its unsynced recording tail and the hand-over: under 2 s of 4 sensors
    assert worker.counters["packets lost around the kill"] < 2 * 4 * 25
