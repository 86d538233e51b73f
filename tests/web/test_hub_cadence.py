"""The hub flushes on a fixed cadence: the time a flush takes does not stretch the period, and a stall
does not end in a burst of catch-up frames."""

from __future__ import annotations

from sensorhub.web.hub import next_frame_deadline

PERIOD_S = 0.05


def test_flush_work_does_not_stretch_the_period() -> None:
    deadline_s, flushes = 0.0, 0
    while deadline_s < 20.0:
        now_s = deadline_s + 0.004  # each flush takes 4 ms after its deadline
        deadline_s = next_frame_deadline(deadline_s, now_s, PERIOD_S)
        flushes += 1
    assert flushes == 400  # sleeping a period after each flush would give 20 / 0.054 = 370


def test_a_stall_skips_ahead_instead_of_bursting() -> None:
    stalled_until_s = 1.0 + 0.3  # a flush at 1.0 s that ends 300 ms late
    deadline_s = next_frame_deadline(1.0, stalled_until_s, PERIOD_S)
    assert deadline_s == stalled_until_s + PERIOD_S
    # a lag under a period is made up by the next deadline
    assert next_frame_deadline(1.0, 1.06, PERIOD_S) == 1.05
