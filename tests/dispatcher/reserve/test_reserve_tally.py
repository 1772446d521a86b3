"""Counting starts into the forecast's buckets, and not counting the time nobody watched."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.reserve.forecast import BUCKET_SECONDS
from dispatcher.reserve.tally import BucketTally

T0 = 1795392000.0  # a bucket's start


def tick_through(tally: BucketTally, start: float, end: float,
                 arrivals: Sequence[float] = ()) -> list[tuple[float, float]]:
    """Ticks once a second from `start` to `end`, with starts at `arrivals`; returns finished buckets."""
    finished: list[tuple[float, float]] = []
    pending = sorted(arrivals)
    t = start
    while t <= end:
        while pending and pending[0] <= t:
            finished += tally.arrived(pending.pop(0))
        finished += tally.advance(t)
        t += 1.0
    return finished


def test_a_bucket_watched_from_start_to_end_is_handed_over_with_its_starts() -> None:
    tally = BucketTally()
    finished = tick_through(tally, T0, T0 + BUCKET_SECONDS, [T0 + 10, T0 + 500, T0 + 899])
    assert finished == [(T0, pytest.approx(3.0))]


def test_a_bucket_that_began_before_the_planner_did_is_not_handed_over() -> None:
    tally = BucketTally()
    finished = tick_through(tally, T0 + 300, T0 + BUCKET_SECONDS + 1, [T0 + 400])
    assert finished == []


def test_a_bucket_mostly_watched_is_scaled_up_to_its_length() -> None:
    tally = BucketTally()
    # Watched from 100 s in: 800 of 900 s, under 90 %.
    finished = tick_through(tally, T0 + 100, T0 + BUCKET_SECONDS, [T0 + 100 + i for i in range(7)])
    assert finished == []
    tally = BucketTally()  # from 45 s in: 855 s watched, 17 starts seen → 17.9 over the whole bucket
    finished = tick_through(tally, T0 + 45, T0 + BUCKET_SECONDS, [T0 + 100 + i for i in range(17)])
    assert finished == [(T0, pytest.approx(17 * 900 / 855))]


def test_buckets_that_passed_while_nobody_held_the_lease_teach_nothing() -> None:
    tally = BucketTally()
    tick_through(tally, T0, T0 + 100)
    # The lease holder died; the next one ticks again two buckets later.
    finished = tally.advance(T0 + 2 * BUCKET_SECONDS + 30)
    assert finished == []  # neither the half-watched bucket nor the unwatched one
    finished = tick_through(tally, T0 + 2 * BUCKET_SECONDS + 31, T0 + 3 * BUCKET_SECONDS)
    assert finished == [(T0 + 2 * BUCKET_SECONDS, pytest.approx(0.0))]


def test_a_clock_that_goes_back_watches_nothing() -> None:
    tally = BucketTally()
    tick_through(tally, T0, T0 + 10)
    assert tally.advance(T0 + 5) == []


@given(st.lists(st.floats(min_value=0.0, max_value=3 * BUCKET_SECONDS - 1), max_size=50))
def test_every_start_of_a_watched_bucket_is_counted_once(offsets: list[float]) -> None:
    tally = BucketTally()
    finished = tick_through(tally, T0, T0 + 3 * BUCKET_SECONDS, [T0 + o for o in offsets])
    assert [start for start, _ in finished] == [T0, T0 + BUCKET_SECONDS, T0 + 2 * BUCKET_SECONDS]
    assert sum(count for _, count in finished) == pytest.approx(len(offsets))


def test_the_tally_goes_through_json_and_carries_on() -> None:
    tally = BucketTally()
    tick_through(tally, T0, T0 + 400, [T0 + 10, T0 + 20])
    carried = BucketTally.from_dict(json.loads(json.dumps(tally.to_dict())))
    finished = tick_through(carried, T0 + 401, T0 + BUCKET_SECONDS, [T0 + 800])
    assert finished == [(T0, pytest.approx(3.0))]


@pytest.mark.parametrize("state", [{"start": "x"}, {"count": -1}, {"start": 1.0, "last": None}, {"watched": True}])
def test_a_damaged_tally_is_refused(state: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="tally state"):
        BucketTally.from_dict(state)
