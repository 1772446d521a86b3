"""The bot host tells its bot's own block of its event loop from a machine that held the loop back, on
the real kernel and a real loop (bot/own_block.py): a coroutine that runs the CPU without yielding is
the bot's block; the process paused (SIGSTOP, then SIGCONT, from a child) or starved of CPU (its
threads and seven busy processes on one core) makes the loop late too, and is not."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.loop_lag import LoopLag, own_cpu_seconds
from bot.own_block import OWN_CPU_SECONDS, OwnBlocks
from botchannel.conversation import MAX_BLOCKS, conversation_figures

sys.path.append(str(Path(__file__).resolve().parents[1] / "bots"))
from cpu_starved import starved  # noqa: E402 - the test bots' folder, as a planted bot imports it

PAUSE = ("import os, signal, sys, time\n"
         "pid = int(sys.argv[1])\n"
         "os.kill(pid, signal.SIGSTOP)\n"
         "time.sleep(2)\n"
         "os.kill(pid, signal.SIGCONT)\n"
         "print('resumed')\n")


async def blocks_while(hold: Callable[[], Awaitable[None]] | None = None, *,
                       busy: float = 0.0) -> tuple[list[list[float]], list[list[float]]]:
    """(the own blocks, the stalls) a loop watch saw while the loop was held. The hold begins once the
    watch ticks: a pause that came first (a busy machine runs the child before the watch's first tick)
    would be before its clock, and so unseen."""
    lag = LoopLag()
    lag.start()
    await asyncio.sleep(0.2)
    if busy:  # the planted fault: the bot's own code runs the CPU without yielding to its loop
        done = own_cpu_seconds() + busy
        while own_cpu_seconds() < done:  # Python's own work between reads: user time, as a bot's is
            sum(range(100_000))
    if hold is not None:
        await hold()
    await asyncio.sleep(0.3)
    lag.stop()
    return lag.own_blocks.report(), lag.report()


async def paused_by_a_child() -> None:
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", PAUSE, str(os.getpid()),
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    # The loop sleeps here while the whole process is stopped; its word after the pause proves the pause,
    # and a child that failed says why.
    said, errors = await child.communicate()
    assert said == b"resumed\n", (child.returncode, errors)


async def test_a_bot_that_runs_the_cpu_on_its_loop_blocks_it_and_a_paused_or_starved_host_does_not() -> None:
    blocks, _ = await blocks_while(busy=OWN_CPU_SECONDS * 1.2)
    assert len(blocks) == 1 and blocks[0][2] >= OWN_CPU_SECONDS, blocks

    blocks, stalls = await blocks_while(paused_by_a_child)
    assert blocks == [] and max(late for _, late, _ in stalls) > 1.0, (blocks, stalls)  # late, and not its own

    blocks, stalls = await blocks_while(lambda: starved(0.3))
    assert blocks == [] and stalls, (blocks, stalls)



def test_blocks_reach_the_channel_whole_and_a_malformed_list_drops_the_figures() -> None:
    """The dispatcher keeps what the host reports (botchannel/conversation.py bounds it)."""
    own = OwnBlocks()
    own.note(1_000_031.5, 31.2, 30.9)
    own.note(1_000_040.0, 0.4, 0.3)  # a gap too light to be a block
    figures = {"caller_turns": 1, "unanswered": 1, "bot_turns": 1, "cut_off": 0, "latencies": [],
               "left_in_first_turn": False, "blocked": own.report()}
    assert own.report() == [[1_000_000.3, 31.2, 30.9]]
    assert conversation_figures(figures) == figures
    for malformed in ([[1.0, 2.0]], [[1.0, -2.0, 1.0]], [[0.0, 1.0, 1.0]] * (MAX_BLOCKS + 1), "31 s"):
        assert conversation_figures({**figures, "blocked": malformed}) is None, malformed


def test_a_full_report_keeps_the_longest_and_the_newest_blocks_in_their_order() -> None:
    """Past MAX_BLOCKS the shortest goes: a long block among many short ones, and the newest, stay."""
    own = OwnBlocks()
    for n in range(MAX_BLOCKS):
        own.note(1_000.0 + 5.0 * n, 1.2 if n != MAX_BLOCKS // 2 else 31.0, 1.1)
    for n in range(MAX_BLOCKS):  # as many again, a little longer than the first ones
        own.note(2_000.0 + 5.0 * n, 1.3, 1.2)
    report = own.report()
    assert len(report) == MAX_BLOCKS and report == sorted(report)
    assert [r[1] for r in report].count(31.0) == 1 and report[-1] == [2_000.0 + 5.0 * (MAX_BLOCKS - 1) - 1.3, 1.3, 1.2]
    assert sum(1 for r in report if r[1] == 1.2) == 0
