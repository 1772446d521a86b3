"""A bot's machine starved of CPU while its loop has work to do, for real: the bot host's threads and
seven busy processes pinned to one core while the loop does `work` seconds of CPU work in 5 ms steps
(as a pipeline decoding audio does), so its thread waits in the kernel's run queue, as a bot's on a
busy host does, about seven times as long as it works. Copied beside a planted booking line
(tests/cli/test_eval_bot_behind_dispatcher.py), imported there by its bare name."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

HOGS = 7
STEP_SECONDS = 0.005  # the loop's work between its yields


async def starved(work: float) -> None:
    cores = os.sched_getaffinity(0)
    core = max(cores)
    for thread in os.listdir("/proc/self/task"):  # the host's threads share the core with the hogs
        os.sched_setaffinity(int(thread), {core})
    burn = f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(HOGS)]
    try:
        done = time.thread_time() + work
        while time.thread_time() < done:
            step = time.thread_time() + STEP_SECONDS
            while time.thread_time() < step:
                pass
            await asyncio.sleep(0)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        for thread in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(thread), cores)
