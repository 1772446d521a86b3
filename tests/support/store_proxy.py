"""A loopback TCP proxy in front of redis-server that makes the store misbehave as a replica sees it,
on the test's own event loop (tests only):

- `slow(seconds)`: every reply of the store held that long (a busy or distant store);
- `late_publish_replies(seconds)`: a PUBLISH goes through at once and runs in the store, only its
  reply is held (a slow link: the sender times out though its message was delivered);
- `lose_publishes()`: a PUBLISH is answered `:1` ("one subscriber got it") and never passed on
  (a message lost in flight, as in a store failover);
- `normal()`: everything passes.

It reads the client's commands as they come (redis-py sends one command per write here, unpipelined).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.support.redis_server import RedisServer

CHUNK = 65536
PUBLISH = b"\r\nPUBLISH\r\n"


class StoreProxy:
    def __init__(self, server: RedisServer) -> None:
        self._server = server
        self._reply_delay = 0.0
        self._publish_reply_delay = 0.0
        self._lose_publishes = False
        self._listener: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return self._server.url.replace(f":{self._server.port}/", f":{self.port}/")

    # The settings tests/dispatcher/store/conftest.py's `settings_for` reads from a server.
    @property
    def password(self) -> str:
        return self._server.password

    @property
    def message_secret(self) -> str:
        return self._server.message_secret

    def normal(self) -> None:
        self._reply_delay = self._publish_reply_delay = 0.0
        self._lose_publishes = False

    def slow(self, seconds: float) -> None:
        self._reply_delay = seconds

    def late_publish_replies(self, seconds: float) -> None:
        self._publish_reply_delay = seconds

    def lose_publishes(self) -> None:
        self._lose_publishes = True

    async def _connection(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        store_in, store_out = await asyncio.open_connection("127.0.0.1", self._server.port)
        publishes_awaiting_reply = 0

        async def up() -> None:
            nonlocal publishes_awaiting_reply
            while data := await client_in.read(CHUNK):
                publishes = data.upper().count(PUBLISH)
                if publishes and self._lose_publishes:
                    client_out.write(b":1\r\n" * publishes)
                    continue
                publishes_awaiting_reply += publishes
                store_out.write(data)
                await store_out.drain()

        async def down() -> None:
            nonlocal publishes_awaiting_reply
            while data := await store_in.read(CHUNK):
                # Replies come in order: an integer reply while a PUBLISH awaits one is its reply.
                held = self._reply_delay
                if publishes_awaiting_reply and data.startswith(b":"):
                    publishes_awaiting_reply -= 1
                    held = max(held, self._publish_reply_delay)
                if held:
                    await asyncio.sleep(held)
                client_out.write(data)
                await client_out.drain()

        try:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await asyncio.gather(up(), down())
        finally:
            for writer in (client_out, store_out):
                writer.close()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._connection(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def start(self) -> None:
        self._listener = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._listener.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def store_proxy(server: RedisServer) -> AsyncIterator[StoreProxy]:
    proxy = StoreProxy(server)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.aclose()
