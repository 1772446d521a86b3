"""Connecting a caller to a bot that is expected to fail: the connection is only what makes the bot
run its code, so the attempt stops as soon as the test has what it waits for (the bot gone, the
offer answered) instead of sitting out the caller's whole ICE deadline on a peer nobody serves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from tests.support.webrtc_client import WebRTCClient

INTERVAL = 0.05  # how soon a condition that holds is seen


async def connect_until(client: WebRTCClient, enough: Callable[[], bool]) -> bool:
    """`client.connect()`, given up once `enough()` holds: True if the connection came up first.
    Whatever `connect()` raises before that (its deadline, a refused offer) is raised."""
    connecting = asyncio.create_task(client.connect())
    while not connecting.done():
        if enough():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
            return False
        await asyncio.wait({connecting}, timeout=INTERVAL)
    connecting.result()
    return True
