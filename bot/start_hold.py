"""The CPU the user's `bot()` spends before its first await, once the offer is answered: reported.

From the answer on, this process's one event loop answers the caller's ICE connectivity checks
and runs the DTLS handshake. The user's `bot()` starts in the same loop right after the answer,
and whatever it does before it first awaits (a module imported on first use, a model loaded, a
pipeline built) runs before any of that: the caller's first check waits in the socket until the
loop is free. A bot that imported an SDK per call held it 0.4-0.8 s of CPU (0.9-2 s of wall on a
busy machine), all of it added to the connect (docs/performance.md). The host cannot preempt
Python code on its loop, and running `bot()` after the connection is up would only move the wait
and lose the overlap with its I/O, so it measures that first step and says what to move where.
"""

from __future__ import annotations

import asyncio
import time

from loguru import logger

# A Pipecat bot's first step (transport, pipeline and worker built from loaded parts) takes a few
# milliseconds of CPU; a tenth of a second already shows in a caller's time to connect.
HELD_CPU_SECONDS = 0.1


def report_first_step(where: str, bound: float = HELD_CPU_SECONDS) -> None:
    """Call right after the user's task is created: its first step runs before this callback does."""
    began = time.thread_time()  # the loop's thread: other threads' work (a decoder's) is not counted

    def measured() -> None:
        held = time.thread_time() - began
        if held < bound:
            return
        logger.warning(
            f"{where}: bot() ran {held:.2f} s of CPU before its first await, after the offer was answered; "
            "the caller's connectivity checks waited for it. Load models and import what a session uses "
            "when the bot file is imported (or in its prewarm()), so that a warm bot has paid for them "
            "(docs/bot.md#start-up-time)"
        )

    asyncio.get_running_loop().call_soon(measured)
