"""uvicorn's server for test servers, stopping within milliseconds instead of a few tenths of a second.

uvicorn notices `should_exit` on a 100 ms tick, then sleeps a fixed 100 ms after asking connections
to close and polls them every 100 ms: 0.15-0.3 s per server stopped, paid by every test that serves
a fake API or a dispatcher (an ECS test stops four), minutes over the suite. This one ticks every
10 ms and polls the connections every 5 ms; what it waits for is the same: the listening sockets
closed, and every connection closed after its response (bounded, as uvicorn's
`timeout_graceful_shutdown` would be, by `CLOSE_SECONDS`).
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn

TICK_SECONDS = 0.01
CLOSE_POLL_SECONDS = 0.005
CLOSE_SECONDS = 10.0


class QuickServer(uvicorn.Server):
    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(TICK_SECONDS)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_SECONDS
        while (self.server_state.connections or self.server_state.tasks) and loop.time() < deadline:
            await asyncio.sleep(CLOSE_POLL_SECONDS)
        for task in self.server_state.tasks:
            task.cancel()
        for server in self.servers:
            await server.wait_closed()
