"""A wait bounded in time that never swallows a cancellation.

Python 3.11's `asyncio.wait_for` returns the awaited result when the cancellation of its caller
arrives as that result comes (it sees its inner future done and returns it): a Ctrl-C landing then
is lost, and the call it was meant to stop runs on (CPython gh-86296). `asyncio.timeout` has no
such window: the caller's cancellation is thrown into the await, and only the timeout's own becomes
a TimeoutError. The caller's waits use this one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """`awaitable`'s result, TimeoutError past `seconds` (None: no limit); cancelled, it is cancelled."""
    async with asyncio.timeout(seconds):
        return await awaitable
