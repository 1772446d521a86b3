"""What aiohttp reports about sessions and connectors nobody closed: at a dispatcher's shutdown,
an "Unclosed client session" error in the log and sockets left to the OS."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any


async def unclosed_reports(use_and_close: Callable[[], Awaitable[Any]]) -> list[str]:
    """The loop's exception reports while `use_and_close` runs and everything it dropped is
    collected (aiohttp reports an unclosed session or connector from `__del__`)."""
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(str(context.get("message"))))
    try:
        await use_and_close()
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    return reported
