"""A bot's machine starved of CPU for a while, for real: the bot host's threads and three busy
processes pinned to one core, while its loop has work to do (as a pipeline decoding audio has), so
the loop's thread waits in the kernel's run queue as a bot's on a busy host does. Copied beside a
planted booking line (tests/cli/test_eval_bot_behind.py), imported by its bare name."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

HOGS = 3
WORK_SECONDS = 0.005  # the loop's work between its yields


async def starved(seconds: float) -> None:
    cores = os.sched_getaffinity(0)
    core = max(cores)
    for thread in os.listdir("/proc/self/task"):  # the host's threads share the core with the hogs
        os.sched_setaffinity(int(thread), {core})
    burn = (f"import os, time\nos.sched_setaffinity(0, {{{core}}})\nend = time.time() + {seconds}\n"
            "while time.time() < end: pass")
    hogs = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(HOGS)]
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            busy_until = time.thread_time() + WORK_SECONDS
            while time.thread_time() < busy_until:
                pass
            await asyncio.sleep(0)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        for thread in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(thread), cores)
