"""A bot's machine starved of CPU while its pipeline has work to do, for real: the bot host's threads
and seven busy processes pinned to one core while `work` seconds of CPU work are done, so the thread
doing it waits in the kernel's run queue, as a bot's on a busy host does, about seven times as long as
it works. `starved`: on the loop, in 5 ms steps (as a pipeline handling audio does); `starved_worker`:
in a worker thread the loop awaits on another core, idle meanwhile (as a recogniser decoding a turn
does while the loop keeps time). Copied beside a planted booking line
(tests/cli/test_eval_bot_behind_dispatcher.py), imported there by its bare name."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

HOGS = 7
STEP_SECONDS = 0.005  # the loop's work between its yields


@contextlib.contextmanager
def busy_core() -> Iterator[int]:
    """`HOGS` busy processes on one of the process's cores (the one it yields), meanwhile."""
    core = max(os.sched_getaffinity(0))
    burn = f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(HOGS)]
    try:
        yield core
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@contextlib.contextmanager
def threads_on(cores: set[int]) -> Iterator[None]:
    """The process's threads (and those they start) on `cores`, meanwhile."""
    were = os.sched_getaffinity(0)
    _pin(cores)
    try:
        yield
    finally:
        _pin(were)


def _pin(cores: set[int]) -> None:
    for thread in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(thread), cores)


def _burn(seconds: float) -> None:
    done = time.thread_time() + seconds
    while time.thread_time() < done:
        pass


async def starved(work: float) -> None:
    with busy_core() as core, threads_on({core}):  # the host's threads share the core with the hogs
        done = time.thread_time() + work
        while time.thread_time() < done:
            _burn(STEP_SECONDS)
            await asyncio.sleep(0)


async def starved_worker(work: float) -> float:
    """Needs two cores: the worker's, shared with the hogs, and the rest's, the loop's among them. The
    seconds the worker waited for its core."""
    with busy_core() as core, threads_on(os.sched_getaffinity(0) - {core}):
        return await asyncio.to_thread(_burn_on, core, work)


def _burn_on(core: int, seconds: float) -> float:
    were = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})  # this thread alone
    try:
        before = _waited()
        _burn(seconds)
        return _waited() - before
    finally:
        os.sched_setaffinity(0, were)


def _waited() -> float:
    """Seconds the calling thread has waited in the kernel's run queue in all."""
    with open("/proc/thread-self/schedstat") as schedstat:
        return int(schedstat.read().split()[1]) / 1e9
