"""Waiting for a machine to start on APIs that have no server-side wait (ECS, Compute Engine)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from dispatcher.machines.base import Machine, MachineState, WaitTimeout


async def poll_until_started(
    status: Callable[[str], Awaitable[Machine | None]], session_id: str, timeout: float, interval: float
) -> Machine:
    """`Machines.wait_started` for APIs with no server-side wait (ECS, GCE): poll `status` until
    the machine is past `starting` (a missing one may just not be visible yet), or time is up."""
    deadline = time.monotonic() + timeout
    while True:
        machine = await status(session_id)
        if machine is not None and machine.state is not MachineState.STARTING:
            return machine
        if time.monotonic() >= deadline:
            raise WaitTimeout(session_id, timeout)
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
