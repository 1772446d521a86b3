"""Waiting on a session without polling from the client: its status changes, as any replica sees them.

A session's state lives at the provider (the record every replica reads, docs/design.md §1), so
a watcher at any replica sees what `GET /sessions/{id}` sees. While it is `starting`, the watcher
joins the one wait for the session at this replica (`SessionService.settle`, the one offers and
`?wait=started` share) the provider's own way (`Machines.wait_started`: a local bot's readiness is
pushed, Fly's `/wait` blocks server-side, ECS and Compute Engine are polled at their own interval); past it (the
bot joining, the session ending) no provider pushes, so it is read every `poll_seconds`.

Every read after the first is the watching key's, like its own `GET` (`pace`: its read bucket,
`READ_RATE_PER_KEY`): a key's open streams would otherwise read the provider outside the bound that
keeps one key from spending the budget every tenant's admission needs. A stream whose key has no
read left waits for one (keep-alives go on), rather than failing.

While a session is `starting`, the moment it is told it will be ready (`ready_at`) is looked at
every ESTIMATE_EVERY_SECONDS without reading the provider again (it is a function of the clock and
the deployment's measured starts): when it has moved by RESEND_SECONDS or more since the session
was last sent (the start runs late, or another start was measured), the session is sent again, so
a client that counts down from one event is never left with a figure the dispatcher no longer
believes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from dispatcher.machines.base import MachineState
from dispatcher.sessions.service import Session, SessionService


@dataclass(frozen=True)
class Watch:
    seconds: float  # the watch's deadline
    poll_seconds: float  # how often a session past `starting` is read
    quiet_seconds: float  # after this long without a change, a `None` (a stream's keep-alive)


# The key's read bucket: 0 when a read was taken from it, else the seconds until one may be.
Pace = Callable[[], Awaitable[float]]
# The moment (epoch seconds) a `starting` session is told it will be ready; None past `starting`.
ReadyAt = Callable[[Session], float | None]
ESTIMATE_EVERY_SECONDS = 0.5
RESEND_SECONDS = 1.0  # the local page shows whole seconds


async def changes(
    sessions: SessionService, session_id: str, watch: Watch, pace: Pace,
    ready_at: ReadyAt | None = None,
) -> AsyncIterator[Session | None]:
    """The session now, then at each status change and (`ready_at`) each move of its ready moment
    (None after each quiet spell), until a final status, the session is forgotten, or the
    deadline. The first read is the caller's (its route counted it); each later one is taken from
    `pace` first."""
    now = time.monotonic()
    deadline, spoke = now + watch.seconds, now
    seen: MachineState | None = None
    told: float | None = None
    first = True
    while True:
        if not first:
            while (wait := await pace()) > 0:
                now = time.monotonic()
                if now >= deadline:
                    return
                if now - spoke >= watch.quiet_seconds:
                    spoke = now
                    yield None
                await asyncio.sleep(min(wait, watch.quiet_seconds, deadline - now))
        first = False
        session = await sessions.get(session_id)
        if session is None:
            return
        now = time.monotonic()
        if session.machine.state is not seen:
            seen, spoke = session.machine.state, now
            told = ready_at(session) if ready_at is not None else None
            yield session
        elif now - spoke >= watch.quiet_seconds:
            spoke = now
            yield None
        if not seen.is_active or now >= deadline:
            return
        step = min(watch.quiet_seconds, deadline - now)
        if seen is MachineState.STARTING:
            settling = asyncio.ensure_future(sessions.settle(session.machine, step, watch.poll_seconds))
            try:
                while told is not None and ready_at is not None and not settling.done():
                    await asyncio.wait({settling}, timeout=ESTIMATE_EVERY_SECONDS)
                    moment = ready_at(session)
                    if not settling.done() and moment is not None and abs(moment - told) >= RESEND_SECONDS:
                        told, spoke = moment, time.monotonic()
                        yield session  # the same session, its estimate rendered anew
                await settling
            finally:
                if not settling.done():
                    settling.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await settling
        else:
            await asyncio.sleep(min(watch.poll_seconds, step))

