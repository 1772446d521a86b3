"""The bot host's own measure of whether its machine let it keep real time (bot/loop_lag.py), on the
real kernel: a loop starved of CPU (its threads and seven busy processes on one core) runs late
waiting for a CPU, and so does the work of a worker thread starved so while the loop keeps time (a
recogniser decoding in `asyncio.to_thread`); a bot that awaits 3 s before answering keeps its loop on
time, one that blocks its loop with `time.sleep` runs it late without waiting for a CPU, and a worker
thread that waits 3 s (on a service) waits for no CPU."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bot.loop_lag import LoopLag, waited_for_cpu
from botchannel.conversation import MAX_STALLS, conversation_figures
from voicefleet.evals.bot_behind import DEFAULT_BOT_BEHIND_LIMIT

sys.path.append(str(Path(__file__).resolve().parents[1] / "bots"))
from cpu_starved import starved, starved_worker  # noqa: E402 - the test bots' folder, as a planted bot imports it

pytestmark = pytest.mark.skipif(waited_for_cpu() is None, reason="the kernel reports no run-queue wait here")


async def blocked(seconds: float) -> None:
    time.sleep(seconds)  # noqa: ASYNC251 - the planted fault: a bot that blocks its own loop


async def watched(hold: Callable[[float], Awaitable[None]], seconds: float) -> tuple[float, float]:
    """(seconds late, seconds late waiting for a CPU: bot_behind.py) of a loop held by `hold(seconds)`."""
    lag = LoopLag()
    lag.start()
    await asyncio.sleep(0.2)
    await hold(seconds)
    await asyncio.sleep(0.2)
    lag.stop()
    stalls = lag.report()
    return sum(s[1] for s in stalls), sum(min(s[1], s[2]) for s in stalls)


async def test_a_loop_starved_of_cpu_runs_late_waiting_for_one_and_a_slow_or_blocking_bot_does_not() -> None:
    _, behind = await watched(starved, 0.5)  # 0.5 s of work, seven times as long waiting for the core
    assert behind > DEFAULT_BOT_BEHIND_LIMIT, behind
    _, behind = await watched(asyncio.sleep, 3.0)
    assert behind < DEFAULT_BOT_BEHIND_LIMIT, behind
    late, behind = await watched(blocked, 3.0)
    assert late >= 2.9 and behind < DEFAULT_BOT_BEHIND_LIMIT, (late, behind)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the loop keeps time on a core the hogs leave it")
async def test_a_worker_thread_starved_of_cpu_holds_the_bot_back_as_long_as_it_waited() -> None:
    waited: list[float] = []

    async def decoding(seconds: float) -> None:  # a recogniser's turn, while the loop keeps time
        waited.append(await starved_worker(seconds))

    # 0.5 s of CPU beside seven hogs on its core waits about 3.5 s, past the limit however quiet the
    # machine (0.2 s waited 1.4 s on a quiet one, short of the 2 s the test needs to mean anything)
    _, behind = await watched(decoding, 0.5)
    assert waited[0] > DEFAULT_BOT_BEHIND_LIMIT and behind >= 0.9 * waited[0], (waited, behind)


async def test_a_worker_thread_that_waits_on_a_service_does_not_hold_the_bot_back() -> None:
    _, behind = await watched(lambda seconds: asyncio.to_thread(time.sleep, seconds), 3.0)
    assert behind < DEFAULT_BOT_BEHIND_LIMIT, behind


def test_stalls_are_summed_per_second_and_bounded_and_reach_the_channel_whole() -> None:
    lag = LoopLag()
    lag.note(100.2, 0.01, 0.02)
    lag.note(100.9, 0.03, 0.04)
    lag.note(102.5, 3.0, 0.0)
    assert lag.report() == [[100.0, 0.04, 0.06], [102.0, 3.0, 0.0]]
    for second in range(103, 103 + MAX_STALLS):
        lag.note(float(second), 0.0, 0.5)
    # Past the bound the last stall takes the rest: coarser, none of it lost.
    assert len(lag.stalls) == MAX_STALLS and sum(s[2] for s in lag.stalls) == pytest.approx(0.06 + 0.5 * MAX_STALLS)
    figures = {"caller_turns": 1, "unanswered": 0, "bot_turns": 2, "cut_off": 0, "latencies": [0.8],
               "left_in_first_turn": False}
    assert conversation_figures({**figures, "behind": lag.report()}) == {**figures, "behind": lag.report()}
    assert conversation_figures(figures) == figures  # an older bot host's, without them


@pytest.mark.parametrize("behind", [[[1.0, 0.5]], [[1.0, -0.5, 0.1]], [[1.0, 0.5, float("nan")]], "9.2",
                                    [[1.0, 0.1, 0.1]] * (MAX_STALLS + 1), [[True, 0.1, 0.1]]])
def test_stalls_not_of_the_contracts_shape_drop_the_figures_whole(behind: object) -> None:
    figures = {"caller_turns": 1, "unanswered": 0, "bot_turns": 2, "cut_off": 0, "latencies": [0.8],
               "left_in_first_turn": False, "behind": behind}
    assert conversation_figures(figures) is None
