"""A TCP relay that delays every byte by a fixed one-way time in each direction, for distance
between dispatchers on a machine whose kernel has no netem (/work/shared/reference: user space
only). Bounded: at most `MAX_CONNECTIONS` at once, each side's queue at most `MAX_QUEUED` chunks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

MAX_CONNECTIONS = 64
MAX_QUEUED = 256
CHUNK = 65536


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, one_way: float) -> None:
    """Bytes read now are written `one_way` seconds later, in order."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(MAX_QUEUED)

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(data)
            await writer.drain()

    delivering = asyncio.create_task(deliver())
    try:
        while data := await reader.read(CHUNK):
            await queue.put((time.monotonic() + one_way, data))
    finally:
        await queue.put((0.0, b""))
        with suppress(OSError, ConnectionError):
            await delivering
        with suppress(OSError, ConnectionError):
            writer.close()


@contextmanager
def delayed(target_port: int, round_trip_seconds: float) -> Iterator[int]:
    """A loopback port that relays to `target_port`, adding `round_trip_seconds` per round trip;
    stopped, with its connections, on exit."""
    loop = asyncio.new_event_loop()
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    one_way = round_trip_seconds / 2

    async def connection(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if slots.locked():
            client_writer.close()
            return
        async with slots:
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", target_port), 5)
            except (OSError, TimeoutError):
                client_writer.close()
                return
            await asyncio.gather(_pump(client_reader, up_writer, one_way), _pump(up_reader, client_writer, one_way),
                                 return_exceptions=True)

    server = loop.run_until_complete(asyncio.start_server(connection, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        async def stop() -> None:
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
