"""bench/sip_capacity.py's fake dispatcher (its stream an echo where the bot would be), served from a thread of
the test's own process: a synchronous test reads its sessions, each one a POST /start the edge made, while the
edge runs. The scanner and fuzzing tests count them: no request of theirs may start a session."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bench.sip_capacity import FakeDispatcher

START_SECONDS = 10.0


@contextmanager
def serving_fake() -> Iterator[FakeDispatcher]:
    """The fake, listening on 127.0.0.1:`fake.port` until the block ends."""
    ready, stop = threading.Event(), threading.Event()
    served: list[FakeDispatcher] = []

    async def serve() -> None:
        async with FakeDispatcher() as fake:
            served.append(fake)
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="fake-dispatcher", daemon=True)
    thread.start()
    if not ready.wait(START_SECONDS):
        raise RuntimeError("the fake dispatcher did not start")
    try:
        yield served[0]
    finally:
        stop.set()
        thread.join(START_SECONDS)


def new_sessions(fake: FakeDispatcher, before: set[str]) -> dict[str, str]:
    """The fake's sessions started since `before` (its sessions then), each to its status."""
    return {session: status for session, status in list(fake.sessions.items()) if session not in before}
