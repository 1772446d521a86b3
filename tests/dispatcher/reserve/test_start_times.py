"""The wait a cold start is told (dispatcher/reserve/start_times.py, measured_starts.py): seeded from the
provider's figure, learnt from the deployment's own starts, never below what was already waited and
never growing while a start runs late."""

from __future__ import annotations

import asyncio
import math
import random
import statistics

import pytest

from dispatcher.reserve.measured_starts import MeasuredStarts
from dispatcher.reserve.start_times import START_RECORD_SECONDS, WINDOW, StartTimes
from dispatcher.store.memory import LocalPool

SLOW = [9.13, 9.15, 9.14, 9.15]  # the four cold starts of a bot that imports for 8 s


def test_before_any_start_is_measured_it_is_the_seed_and_says_so() -> None:
    seeded = StartTimes.fitted(3.0, 0.6, [])
    assert seeded.measured == 0 and seeded.remaining(0) == pytest.approx(3.0)
    assert seeded.quote() == pytest.approx(3.0 * math.exp(1.2816 * 0.6), rel=1e-3)


def pulled(seed: float, starts: list[float]) -> float:
    """The centre told: the starts' median log, with the seed's log counted as one more start."""
    n = len(starts)
    return math.exp((math.log(seed) + n * statistics.median(map(math.log, starts))) / (n + 1))


def test_one_measured_start_moves_the_told_wait_halfway_and_twenty_agree_within_ten_percent() -> None:
    one = StartTimes.fitted(1.5, 0.4, SLOW[:1])  # halfway in logs: one start does not set the centre alone
    assert one.measured == 1 and one.remaining(0) == pytest.approx(math.sqrt(1.5 * 9.13))
    twenty = StartTimes.fitted(1.5, 0.4, SLOW * 5)
    assert all(abs(twenty.remaining(0) - s) / s < 0.10 for s in SLOW)


def test_bots_that_report_ready_late_move_the_told_wait_by_steps() -> None:
    """A `ready` 30 s late (a hostile or broken bot) moved the quote from 0.6 s to 30 s at once;
    each start counts for at most OBSERVATION_CAP times the quote, and the seed as one start."""
    here = MeasuredStarts(LocalPool(), 0.6, 0.4, lambda work: None)
    here.observe(30.0)
    assert here.times.remaining(0) < 2.0 and here.times.quote() < 4.0
    slower = MeasuredStarts(LocalPool(), 1.5, 0.4, lambda work: None)  # a deployment really slower
    for seconds in SLOW * 8:
        slower.observe(seconds)
    assert abs(slower.times.remaining(0) - 9.14) / 9.14 < 0.10


def test_it_follows_the_last_window_of_starts_and_one_stuck_machine_does_not_move_it() -> None:
    draw = random.Random(5)
    old = [20 * math.exp(draw.gauss(0, 0.3)) for _ in range(WINDOW)]
    new = [8 * math.exp(draw.gauss(0, 0.1)) for _ in range(WINDOW - 1)]
    times = StartTimes.fitted(40.0, 0.35, [*old, *new, START_RECORD_SECONDS])  # stuck as long as is timed
    assert times.measured == WINDOW and 7 < times.remaining(0) < 9


@pytest.mark.parametrize("sigma", [0.01, 0.1, 0.35, 0.6, 1.2])
def test_a_late_start_is_never_told_more_than_before_nor_zero(sigma: float) -> None:
    times = StartTimes(math.log(9.14), sigma, 10)
    told = [times.remaining(w / 20) for w in range(20 * 200)]
    assert all(later <= earlier + 1e-12 for earlier, later in zip(told, told[1:], strict=False))
    assert min(told) > 0  # the moment told is always after the wait so far
    # On time, it counts down with the clock (a start at 5 s of a ~9.1 s bot has ~4 s left).
    if sigma <= 0.1:
        assert times.remaining(5.0) == pytest.approx(4.14, abs=0.1)


async def test_starts_measured_elsewhere_are_read_back_and_quoted_here() -> None:
    pool, tasks = LocalPool(), []
    here = MeasuredStarts(pool, 1.5, 0.4, lambda work: tasks.append(asyncio.ensure_future(work)))
    here.observe(9.13)
    assert here.times.measured == 1
    await asyncio.gather(*tasks)
    await pool.started_cold(9.15)  # another replica's
    await here.reload(now=0.0)
    assert here.times.measured == 2 and here.times.remaining(0) == pytest.approx(pulled(1.5, [9.13, 9.15]))
    restarted = MeasuredStarts(pool, 1.5, 0.4, lambda work: None)  # a new process on the same store
    assert restarted.times.measured == 0
    await restarted.reload(now=0.0)
    assert restarted.times.measured == 2


async def test_a_start_measured_here_is_not_lost_to_a_reload_before_its_write_lands() -> None:
    pool, writes = LocalPool(), []
    await pool.started_cold(9.15)  # another replica's
    here = MeasuredStarts(pool, 1.5, 0.4, writes.append)  # the store's write not yet run
    here.observe(9.13)
    await here.reload(now=0.0)  # the store holds the other replica's start, not yet this one
    assert here.times.measured == 2
    await asyncio.gather(*writes)
    await here.reload(now=10.0)
    assert here.times.measured == 2 and await pool.cold_starts() == [9.15, 9.13]


async def test_a_start_no_start_can_last_is_not_quoted_and_does_not_stop_the_fit() -> None:
    """A store writer pushed 1e308 into the deployment's list: the fit overflowed in every
    replica's reload (the reserve stopped), for as long as the value stayed. Only what a start
    can measure counts (0 < s ≤ START_RECORD_SECONDS)."""
    pool = LocalPool()
    for seconds in (9.13, 1e308, START_RECORD_SECONDS + 1, 9.15):
        await pool.started_cold(seconds)
    here = MeasuredStarts(pool, 1.5, 0.4, lambda work: None)
    await here.reload(now=0.0)
    here.observe(1e308)
    here.observe(float("nan"))
    assert here.times.measured == 2 and here.times.remaining(0) == pytest.approx(pulled(1.5, [9.13, 9.15]))
    assert math.isfinite(here.times.quote())
    assert StartTimes.fitted(1.5, 0.4, [START_RECORD_SECONDS]).measured == 1  # the bound itself is a start
