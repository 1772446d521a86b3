"""One launch per keyed session, across replicas: the start lease around a keyed start.

A keyed start looks the session up and launches it while holding the session's start lease
(`StartLease`, dispatcher/store/coordination.py): with several replicas the store's
(dispatcher/store/starts.py), so the same Idempotency-Key at two replicas at once gives one
session and one machine, warm or cold; one process has nothing to wait for.

The store unreachable: a cloud provider's launch is idempotent on the session id (ECS clientToken,
a Fly or GCE name), so a cold launch still cannot make a second machine and the start goes on,
cold only (a warm claim would pair another bot with the key); local processes have no such
guard, so a local keyed start is refused until the store is back (docs/replicas.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from dispatcher.errors import ApiError
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import Coordination
from dispatcher.store.starts import StartBusy

BUSY_RETRY_AFTER_SECONDS = 1.0
STORE_RETRY_AFTER_SECONDS = 2.0


@contextlib.asynccontextmanager
async def exclusive_start(
    coordination: Coordination, session_id: str, *, keyed: bool, wait_seconds: float,
    idempotent_launch: bool,
) -> AsyncIterator[bool]:
    """Holds the session's start lease for the block; yields True when only a cold launch is safe."""
    if not keyed:
        yield False
        return
    async with contextlib.AsyncExitStack() as held:
        try:
            await held.enter_async_context(coordination.starts.held(session_id, wait_seconds))
            cold_only = False
        except StartBusy:
            raise ApiError(409, "start_in_progress", "another replica is still starting this Idempotency-Key's "
                           "session; retry", retry_after=BUSY_RETRY_AFTER_SECONDS,
                           extra={"session_id": session_id}) from None
        except StoreUnavailable:
            if not idempotent_launch:
                raise ApiError(503, "store_unavailable", "the replicas' store is unreachable, and a keyed start "
                               "needs it here (local bots cannot be launched idempotently)",
                               retry_after=STORE_RETRY_AFTER_SECONDS) from None
            cold_only = True
        yield cold_only
