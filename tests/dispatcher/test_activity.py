"""This replica's last hour for GET /status (dispatcher/observability/activity.py): windows to the
10-second slot, one sample a minute, and every part bounded however much comes in."""

from __future__ import annotations

import random

from dispatcher.observability.activity import MAX_CODES, MAX_READY_SAMPLES, OTHER_CODE, SLOTS, Activity


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_windows_count_starts_and_refusals_by_code_over_1_5_and_15_minutes() -> None:
    clock = Clock()
    activity = Activity(clock)
    activity.started()
    activity.refused("at_capacity")
    clock.now += 10 * 60
    activity.started()
    activity.started()
    activity.refused("key_at_capacity")
    clock.now += 2 * 60  # these out of the last minute, inside the last five; the first ones in the last 15
    windows = activity.windows()
    assert windows["1m"] == {"starts": 0, "refused": 0, "refusals": {}}
    assert windows["5m"] == {"starts": 2, "refused": 1, "refusals": {"key_at_capacity": 1}}
    assert windows["15m"] == {"starts": 3, "refused": 2, "refusals": {"at_capacity": 1, "key_at_capacity": 1}}
    clock.now += 20 * 60
    assert activity.windows()["15m"] == {"starts": 0, "refused": 0, "refusals": {}}


def test_the_history_is_a_sample_a_minute_with_the_time_to_ready_quantiles() -> None:
    clock = Clock(1_800_000_000.0 - 1_800_000_000.0 % 60)
    activity = Activity(clock)
    for seconds in (1.0, 2.0, 3.0, 4.0, 10.0):
        activity.ready_after(seconds)
        activity.started()
    activity.sampled(sessions=3, reserve_idle=2)
    clock.now += 30
    activity.sampled(sessions=5, reserve_idle=1)  # the minute's last count is the one shown
    clock.now += 120  # a minute with nothing is left out: a gap in the chart
    activity.refused("at_capacity")
    first, second = activity.history()
    assert first == {"at": int(clock.now) - 150, "starts": 5, "refused": 0, "ready_p50": 3.0, "ready_p95": 10.0,
                     "sessions": 5, "reserve_idle": 1}
    assert second == {"at": int(clock.now) - 30, "starts": 0, "refused": 1, "ready_p50": None, "ready_p95": None,
                      "sessions": None, "reserve_idle": None}


def test_the_history_keeps_the_last_hour_only() -> None:
    clock = Clock()
    activity = Activity(clock)
    for _ in range(2 * SLOTS):
        activity.started()
        clock.now += 10
    history = activity.history()
    assert len(history) in (60, 61)  # the hour's minutes, the oldest one partly
    assert history[0]["at"] >= clock.now - 3600 - 60
    assert sum(minute["starts"] for minute in history) <= SLOTS


def test_codes_and_ready_samples_are_bounded_per_slot() -> None:
    activity = Activity(Clock(), random.Random(7))
    for number in range(MAX_CODES + 10):
        activity.refused(f"code_{number}")
    for _ in range(10 * MAX_READY_SAMPLES):
        activity.ready_after(1.0)
    activity.ready_after(-1.0)  # a clock that stepped back: no time to ready
    activity.ready_after(float("nan"))
    refusals = activity.windows()["1m"]["refusals"]
    assert len(refusals) == MAX_CODES + 1
    assert refusals[OTHER_CODE] == 10
    slot = activity._slots[-1]
    assert len(slot.ready) == MAX_READY_SAMPLES
    assert slot.ready_seen == 10 * MAX_READY_SAMPLES


def test_a_clock_that_steps_back_counts_into_the_latest_slot() -> None:
    clock = Clock()
    activity = Activity(clock)
    activity.started()
    clock.now -= 300
    activity.started()
    assert len(activity._slots) == 1
    clock.now += 300
    assert activity.windows()["1m"]["starts"] == 2
