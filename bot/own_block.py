"""A bot that blocked its own event loop, told from a machine that starved it.

A loop that woke seconds late was either kept from running (its machine busy with other processes, or
the process paused) or kept running something that never yielded: the bot's own code (a busy loop, a
CPU-bound call made without `asyncio.to_thread`). The loop's thread's own user CPU time tells them apart
(its kernel time is left out: a starved host charges its own work to whichever thread is on the CPU):
it advances while the bot's code runs on it, whatever else the machine does (a busy block on a
loaded machine still runs a share of the time), and hardly at all while its machine keeps it waiting.
A pipeline's own work between two ticks of the watch is milliseconds; `OWN_CPU_SECONDS` of it, run
without the loop getting round to its timers, is a block. A bot blocked in a call that sleeps
(`time.sleep`, blocking I/O) uses no CPU either, and is not told from a paused host: not counted here.
Figures: docs/bot.md, "A bot that blocks its event loop".
"""

from __future__ import annotations

from botchannel.conversation import MAX_BLOCKS

# Seconds of CPU the loop's thread ran between two ticks for their gap to be the bot's own block.
OWN_CPU_SECONDS = 1.0


class OwnBlocks:
    """The loop's blocks that its own code made, each `[wall-clock second it began, seconds it lasted,
    seconds of the loop thread's CPU in it]`: at most MAX_BLOCKS, the newest and the longest."""

    def __init__(self) -> None:
        self.blocks: list[list[float]] = []

    def note(self, ended_at: float, gap: float, cpu: float) -> None:
        """A gap of `gap` seconds between two ticks of the watch that ended at wall second `ended_at`, in
        which the loop's thread ran `cpu` seconds: kept when the bot's own code ran it."""
        if cpu < OWN_CPU_SECONDS:
            return
        self.blocks.append([ended_at - gap, gap, cpu])
        if len(self.blocks) > MAX_BLOCKS:
            # Full: the newest stays (it may be the one the connection just expired in), and so do the
            # longest; the shortest of the others goes. The list stays in the order the blocks came.
            shortest = min(range(len(self.blocks) - 1), key=lambda i: self.blocks[i][1])
            del self.blocks[shortest]

    def longest(self, since: float = 0.0) -> float:
        """The longest block that ended after wall second `since`, in seconds; 0 when none did."""
        return max((seconds for began, seconds, _ in self.blocks if began + seconds >= since), default=0.0)

    def report(self) -> list[list[float]]:
        return [[round(began, 3), round(seconds, 3), round(cpu, 3)] for began, seconds, cpu in self.blocks]
