"""Whether the bot host's machine let its pipeline keep real time: the time its event loop's thread
was ready to run but waited for a CPU (the kernel's run-queue wait, `/proc/thread-self/schedstat`),
and how late the loop woke meanwhile, reported with the session's end beside its turn latencies
(bot/conversation.py).

A bot slow by design (an LLM that thinks for 3 s, an `await asyncio.sleep(3)`) leaves its loop idle
meanwhile, and a bot that blocks its own loop (a `time.sleep`, a blocking call) keeps it from
running but waits for no CPU: neither makes the loop wait in the run queue. A host starved of CPU (a
busy machine) does: its pipeline's work, audio included, runs late by as much. Each tick that waited
is summed into its wall-clock second, `[second, seconds late, seconds waited for a CPU]`, so that an
eval can tell which of its turns the bot's machine held back (it reads them on its own wall clock:
docs/evals.md, "A bot whose machine was busy").

The pipeline's work is not all on the loop's thread: Pipecat's VAD analyses audio in an executor of
its own, and a recogniser or a voice that blocks (a local decoder, eSpeak) runs in a worker thread
(`asyncio.to_thread`) while the loop, idle, keeps time. Such a thread waits for a CPU only while it
has work to do, so each second it waited is a second its work (a transcript, an answer's audio) came
late: a tick counts the longest wait of the process's other Python threads as late and waited both.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import threading
import time
from pathlib import Path

from bot.own_block import OwnBlocks
from botchannel.conversation import MAX_STALLS

TICK_SECONDS = 0.05
# A tick that waited this long for a CPU, or woke this late, is noted: scheduler noise is below it.
NOTE_SECONDS = 0.005
# Notes are summed per wall-clock second (a starved loop waits tick after tick): an eval lays them on
# turns of several seconds each.
BUCKET_SECONDS = 1.0
SCHEDSTAT = Path("/proc/thread-self/schedstat")  # run time, run-queue wait (ns), timeslices
TASKS = Path("/proc/self/task")  # each thread's own schedstat, by its native id


def waited_for_cpu(schedstat: Path = SCHEDSTAT) -> float | None:
    """Seconds a thread (by default the calling one) has waited in the run queue in all; None where the
    kernel does not say (or the thread has ended)."""
    try:
        return int(schedstat.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


class WorkerWaits:
    """The run-queue wait of the process's Python threads other than the loop's, tick by tick."""

    def __init__(self, loop_thread: int) -> None:
        self._loop_thread = loop_thread
        self._waited: dict[int, float] | None = None  # native thread id → its wait in all at the last tick

    def longest(self) -> float:
        """The longest any of them waited for a CPU since the last call; a thread started meanwhile (an
        executor starts its threads as work comes) since it started; 0 on the first call."""
        longest, waited = 0.0, {}
        for thread in threading.enumerate():
            tid = thread.native_id
            if tid is None or tid == self._loop_thread:
                continue
            now = waited_for_cpu(TASKS / str(tid) / "schedstat")
            if now is None:
                continue
            waited[tid] = now
            if self._waited is not None:
                longest = max(longest, now - self._waited.get(tid, 0.0))
        self._waited = waited
        return longest


def own_cpu_seconds() -> float:
    """The calling thread's user CPU time: the bot's code running on it. Not `time.thread_time()`, which
    adds the kernel's time on the thread, and a starved host makes that (page faults, reclaim, run-queue
    work charged to whoever is on the CPU) without any code of the bot's asking for it."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_utime


class LoopLag:
    def __init__(self) -> None:
        self.stalls: list[list[float]] = []  # [wall-clock second, seconds late, seconds waited for a CPU]
        self.own_blocks = OwnBlocks()  # those the bot's own code made (bot/own_block.py)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts watching the running loop; idempotent."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="bot-loop-lag")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def note(self, at: float, late: float, waited: float) -> None:
        """A tick that ended at wall second `at`, woke `late` and waited `waited` for a CPU: added to its
        second's stall, or to the last one when the list is full (the call's last stalls stay
        counted, if coarser)."""
        second = at - at % BUCKET_SECONDS
        if self.stalls and (self.stalls[-1][0] >= second or len(self.stalls) >= MAX_STALLS):
            self.stalls[-1][1] += late
            self.stalls[-1][2] += waited
            return
        self.stalls.append([second, late, waited])

    def report(self) -> list[list[float]]:
        return [[round(second, 3), round(late, 3), round(waited, 3)] for second, late, waited in self.stalls]

    async def _watch(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            before = waited_for_cpu()  # one read a tick: each tick's end is the next one's start
            workers = WorkerWaits(threading.get_native_id())
            workers.longest()
            ticked, ran = time.monotonic(), own_cpu_seconds()
            while True:
                due = time.monotonic() + TICK_SECONDS
                await asyncio.sleep(TICK_SECONDS)
                now, running = time.monotonic(), own_cpu_seconds()
                self.own_blocks.note(time.time(), now - ticked, running - ran)
                ticked, ran = now, running
                after, late = waited_for_cpu(), max(0.0, now - due)
                waited = 0.0 if before is None or after is None else max(0.0, after - before)
                before = after
                worker = workers.longest()  # a worker's work was as late as it waited
                late, waited = max(late, worker), max(waited, worker)
                if late > NOTE_SECONDS or waited > NOTE_SECONDS:
                    self.note(time.time(), late, waited)
