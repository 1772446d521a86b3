"""Run the bot's event loop with a bounded shutdown, so the process always exits promptly.

`asyncio.run()` waits without limit for cancelled tasks and for the default executor. A native
client that ignores cancellation (the Daily join blocks until its network request fails, ~20 s
offline) would keep a finished session's machine alive. Here every wait has a deadline; what
still runs after it is logged by name and abandoned, and `exit_now()` ends the process even if a
native library left non-daemon threads behind.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

SHUTDOWN_GRACE_SECONDS = 1.0


def run_bounded(main: Coroutine[Any, Any, T], *, grace: float = SHUTDOWN_GRACE_SECONDS) -> T:
    loop = asyncio.new_event_loop()
    # Our own executor: `loop.shutdown_default_executor()` joins its threads without a deadline
    # (a Daily clean-up thread can wait on a callback to this very loop: a deadlock).
    executor = ThreadPoolExecutor(thread_name_prefix="bot-executor")
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_leftovers(loop, grace)
            loop.run_until_complete(_bounded(loop.shutdown_asyncgens(), grace))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop, grace: float) -> None:
    pending = asyncio.all_tasks(loop)
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.wait(pending, timeout=grace))
    stuck = sorted(task.get_name() for task in pending if not task.done())
    if stuck:
        from loguru import logger

        logger.warning(f"abandoning {len(stuck)} task(s) that ignored cancellation: {', '.join(stuck)}")


async def _bounded(awaitable: Coroutine[Any, Any, None], grace: float) -> None:
    try:
        await asyncio.wait_for(awaitable, grace)
    except TimeoutError:
        pass


def exit_now(code: int) -> None:
    """Exits with `code`; skips interpreter teardown only when foreign threads would block it."""
    sys.stdout.flush()
    sys.stderr.flush()
    deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                # Interpreter teardown would join it forever; everything we owe is flushed.
                os._exit(code)
    sys.exit(code)
