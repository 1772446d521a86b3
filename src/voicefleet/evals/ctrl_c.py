"""Ctrl-C in a suite's run, taken as pytest and uvicorn take it.

The first press cancels the run's main task, as asyncio.run does: the calls under way are stopped and
reported as interrupted, and the run ends with its report. Stopping a call asks the dispatcher to
stop its session, which a dispatcher that does not answer can hold for its HTTP timeout: a second
press ends the process at once, after `at_once` has written what it can (the calls over by then)
and named the exit status. A process started with SIGINT ignored (a script's `… &` job) keeps it
ignored, as asyncio.run leaves it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")


def run_with_ctrl_c(main: Coroutine[Any, Any, T], at_once: Callable[[], int]) -> T:
    """`main` run on a loop of its own to its end, Ctrl-C taken as above; KeyboardInterrupt if the first
    press cancelled it before it could take the cancellation itself."""
    presses = 0
    task: asyncio.Task[T] | None = None
    loop: asyncio.AbstractEventLoop | None = None

    def pressed(signum: int, frame: FrameType | None) -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            if task is None or loop is None:  # before the run began: nothing to report
                raise KeyboardInterrupt
            task.cancel()
            loop.call_soon_threadsafe(lambda: None)  # a loop asleep in its selector wakes to it
            return
        status = at_once()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)  # not SystemExit: the loop's close would wait for the calls' tasks again

    taken = threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler  # as asyncio.run takes it
    previous = signal.signal(signal.SIGINT, pressed) if taken else None
    try:  # the handler outlives the loop's close, which waits for the tasks the run left
        with asyncio.Runner() as runner:
            loop = runner.get_loop()
            task = loop.create_task(main)
            try:
                return loop.run_until_complete(task)
            except asyncio.CancelledError:
                if presses:
                    raise KeyboardInterrupt from None
                raise
    finally:
        if taken:
            signal.signal(signal.SIGINT, previous)
