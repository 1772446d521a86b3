"""Waiting for a condition in a test: polled until a deadline, never a sleep that hopes.

`wait_until` (plain code) and `until` (async code) return the condition's first truthy value and
fail with an AssertionError naming what never happened; `within` returns None instead, for a
caller that reports the failure itself. The interval only sets how soon a condition that holds is
seen; the deadline bounds a failure.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0  # generous: tests share a loaded machine; a condition that holds returns at once
DEFAULT_INTERVAL = 0.05


def wait_until(
    condition: Callable[[], T], what: str, *, timeout: float = DEFAULT_TIMEOUT, interval: float = DEFAULT_INTERVAL,
    detail: Callable[[], str] | None = None,
) -> T:
    """`condition()`'s first truthy value; after `timeout` an AssertionError naming `what` (and
    `detail()`, e.g. the processes' logs)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f"\n{detail()}" if detail else ""))
        time.sleep(interval)
    return value


async def within(
    condition: Callable[[], T | Awaitable[T]], timeout: float = DEFAULT_TIMEOUT, interval: float = DEFAULT_INTERVAL
) -> T | None:
    """The first truthy value of `condition()` (awaited when it is a coroutine), or None after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(interval)


async def until(
    condition: Callable[[], T | Awaitable[T]], what: str, *, timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
) -> T:
    """`within`, failing with an AssertionError naming `what` after `timeout`."""
    value = await within(condition, timeout, interval)
    if value is None:
        raise AssertionError(f"timed out waiting for {what}")
    return value
