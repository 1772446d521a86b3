"""PUBLISH without a round trip per message: one connection of this replica's own, commands
written in order as they come, their replies read back in the same order by one reader.

A call's frames are published one after the other; awaiting each reply before the next would let
a call move one frame per store round trip, which on a loaded host falls behind a 20 ms frame
rate. Redis answers a connection's commands in the order it received them, so the replies match
the waiting futures first in, first out. A reply that does not come within the store's timeout,
or a connection that fails, fails every publish still waiting (`StoreUnavailable`); the next
publish connects again. At most `MAX_IN_FLIGHT` wait at once: the next waits for the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING

from dispatcher.store.client import StoreUnavailable

if TYPE_CHECKING:  # redis-py only where a store is configured: a local start never loads it (its CPU)
    from redis.asyncio import Redis
    from redis.asyncio.connection import AbstractConnection

MAX_IN_FLIGHT = 10_000


class Publisher:
    def __init__(self, client: Redis, timeout_seconds: float) -> None:
        self._client = client
        self._timeout = timeout_seconds
        self._connection: AbstractConnection | None = None
        self._pending: deque[asyncio.Future[int]] = deque()
        self._replies = asyncio.Event()  # something is waiting for a reply
        self._reader: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()  # writes in order, never interleaved

    async def publish(self, channel: str, data: bytes) -> asyncio.Future[int]:
        """Writes the PUBLISH and returns the future of its reply (how many subscribers got it).
        Raises `StoreUnavailable` when it cannot be written."""
        if len(self._pending) >= MAX_IN_FLIGHT:
            await asyncio.wait({self._pending[-1]})
        async with self._sending:
            connection = await self._connected()
            reply: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            try:
                await connection.send_packed_command(connection.pack_command("PUBLISH", channel, data),
                                                     check_health=False)
            except Exception as exc:
                self._fail(connection, exc)
                raise StoreUnavailable(f"the store did not take a message: {type(exc).__name__}") from exc
            self._pending.append(reply)
            self._replies.set()
        return reply

    async def _connected(self) -> AbstractConnection:
        if self._connection is None:
            pool = self._client.connection_pool
            # The pool's settings (address, TLS, credentials), but no socket timeout of its own:
            # the reader waits as long as nothing is pending and bounds each reply itself.
            connection = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
            try:
                async with asyncio.timeout(self._timeout):
                    await connection.connect()  # type: ignore[no-untyped-call]
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await connection.disconnect(nowait=True)
                raise StoreUnavailable(f"cannot connect to publish: {type(exc).__name__}") from exc
            self._connection = connection
            self._reader = asyncio.create_task(self._read(connection), name="store-publisher")
        return self._connection

    async def _read(self, connection: AbstractConnection) -> None:
        while self._connection is connection:
            if not self._pending:
                self._replies.clear()
                await self._replies.wait()
                continue
            try:
                async with asyncio.timeout(self._timeout):
                    reply = await connection.read_response()
            except Exception as exc:
                self._fail(connection, exc)
                return
            future = self._pending.popleft()
            if not future.done():
                future.set_result(int(reply))

    def _fail(self, connection: AbstractConnection, exc: BaseException) -> None:
        """Every publish still waiting fails; the next one connects again."""
        if self._connection is connection:
            self._connection = None
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(StoreUnavailable(f"no reply from the store: {type(exc).__name__}"))
        self._replies.set()  # the old reader sees it is not current any more and returns
        task = asyncio.ensure_future(connection.disconnect(nowait=True))
        task.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def aclose(self) -> None:
        connection = self._connection
        self._connection = None
        self._replies.set()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if connection is not None:
            self._fail(connection, ConnectionError("closed"))
            with contextlib.suppress(Exception):
                await connection.disconnect()
