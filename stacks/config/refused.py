"""A refusal raised inside an apply, reported once.

A program that refuses a change from its last outputs raises inside an apply that every registration
waits on (through the provider): each of those fails with the same refusal, and asyncio would print
every such future it collects as "Future exception was never retrieved", with a traceback, after
Pulumi has printed the refusal (a RunError: its message alone). Those copies, and only those, are dropped.
"""

from __future__ import annotations

import asyncio
from typing import Any


def reported_once(refused: BaseException) -> None:
    loop = asyncio.get_running_loop()
    earlier = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("exception") is refused:
            return
        if earlier is not None:
            earlier(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
