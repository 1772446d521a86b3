"""How long each task holds an event loop at once, in CPU time: what it can add to any frame
waiting behind it, whatever the machine's load (a wall-clock delay also counts the time the process
was not scheduled at all). bench/recorder.py reads it for the recorder's tasks.

`watch()` wraps asyncio's callback runner for the process (a benchmark's only: never the bot host).
"""

from __future__ import annotations

import asyncio
import asyncio.events
import time
from collections import defaultdict
from typing import Any

HOLDS: defaultdict[str, list[float]] = defaultdict(list)  # a task's name → the CPU seconds of each of its steps


def _owner(handle: Any) -> str:
    task = getattr(handle._callback, "__self__", None)
    return task.get_name() if isinstance(task, asyncio.Task) else "callbacks"


def watch() -> None:
    run = asyncio.events.Handle._run

    def timed(handle: asyncio.events.Handle) -> None:
        began = time.thread_time()
        run(handle)
        HOLDS[_owner(handle)].append(time.thread_time() - began)

    asyncio.events.Handle._run = timed  # type: ignore[method-assign,assignment]
