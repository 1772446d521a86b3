"""A deploy that does not cut calls: on SIGTERM, a dispatcher with calls in flight drains first.

uvicorn, told to exit, closes every open WebSocket at once (code 1012), which would hang up every
call this replica relays. So the first SIGTERM while calls are up only starts draining: new calls
are refused (`/healthz` answers 503 `draining`, so a load balancer stops sending any), the calls in
flight go on, and the server exits once the last one ends or `PHONE_DRAIN_SECONDS` have passed,
whichever is first. A second SIGTERM (or SIGINT, Ctrl-C) exits at once, as before. Without calls
a SIGTERM exits at once too. Bots' control channels are not calls: a bot reconnects elsewhere.

With several replicas (docs/replicas.md) the first SIGTERM or SIGINT also starts the replica's own
drain at once (`replica_drain`): the store learns it is draining, its reserve starts no idle bot.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn

log = logging.getLogger("dispatcher.draining")


class DrainingServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        *,
        calls: Callable[[], int],
        start_draining: Callable[[], None],
        drain_seconds: float,
        replica_drain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(config)
        self._replica_drain = replica_drain
        self._replica_draining: asyncio.Future[None] | None = None
        self._calls = calls
        self._start_draining = start_draining
        self._drain_seconds = drain_seconds
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._drain_replica()
        if sig == signal.SIGTERM and self._drain_until is None and self._drain_seconds > 0 and self._calls() > 0:
            self._captured_signals.append(sig)  # re-raised after a clean exit, as uvicorn does
            self._drain_until = time.monotonic() + self._drain_seconds
            self._start_draining()
            log.warning("SIGTERM: draining %d call(s) for at most %gs", self._calls(), self._drain_seconds)
            return
        super().handle_exit(sig, frame)

    def _drain_replica(self) -> None:
        if self._replica_drain is None or self._replica_draining is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a signal before the loop runs: nothing is being served yet
            return
        self._replica_draining = asyncio.ensure_future(self._replica_drain(), loop=loop)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and not self.should_exit:
            if self._calls() == 0 or time.monotonic() >= self._drain_until:
                log.warning("drained (%d call(s) left): exiting", self._calls())
                self.should_exit = True
        return await super().on_tick(counter)
