"""A TCP relay that delays every byte by a fixed one-way time in each direction, for distance
between dispatchers on a machine whose kernel has no netem (/work/shared/reference: user space
only). Bounded: at most `MAX_CONNECTIONS` at once, each side's queue at most `MAX_QUEUED` chunks.

One relay stands in front of a region, and every region dials that one URL (`REGIONS` is one text
everywhere: a region listing another's URL differently is refused). A link of its own per pair of
regions is therefore a delay chosen by who dials: `by_source` maps a process id to its round trip,
and the relay finds the process behind each connection it accepts from the kernel's socket table
(Linux `/proc`), so eu→us and ap→us cross different distances through one relay."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

MAX_CONNECTIONS = 64
MAX_QUEUED = 256
CHUNK = 65536


def _socket_inode(local_port: int, remote_port: int) -> str | None:
    """The inode of the loopback TCP socket from `local_port` to `remote_port` (the dialler's side)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                fields = row.split()
                if (int(fields[1].rsplit(":", 1)[1], 16) == local_port
                        and int(fields[2].rsplit(":", 1)[1], 16) == remote_port):
                    return fields[9]
    return None


def dialler_pid(peer_port: int, relay_port: int, candidates: Mapping[int, float]) -> int | None:
    """The process holding the socket that dialled the relay from `peer_port`: `candidates` looked
    at first, then every process this user may read (a dialler not yet in the mapping)."""
    inode = _socket_inode(peer_port, relay_port)
    if inode is None:
        return None
    link = f"socket:[{inode}]"
    others = [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and int(entry) not in candidates]
    for pid in [*candidates, *others]:
        with suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == link:
                        return pid
    return None


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, one_way: float | Callable[[], float],
                ) -> None:
    """Bytes read now are written `one_way` seconds later (read again for each chunk), in order."""
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
            await queue.put((time.monotonic() + (one_way() if callable(one_way) else one_way), data))
    finally:
        await queue.put((0.0, b""))
        with suppress(OSError, ConnectionError):
            await delivering
        with suppress(OSError, ConnectionError):
            writer.close()


@contextmanager
def delayed(target_port: int, round_trip_seconds: float, by_source: Mapping[int, float] | None = None,
            ) -> Iterator[int]:
    """A loopback port that relays to `target_port`, adding `round_trip_seconds` per round trip, or
    `by_source[pid]` for a connection dialled by process `pid` (read as the bytes pass: the caller
    may fill it once the processes run); stopped, with its connections, on exit."""
    loop = asyncio.new_event_loop()
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    sources: Mapping[int, float] = by_source if by_source is not None else {}

    async def connection(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if slots.locked():
            client_writer.close()
            return
        async with slots:
            pid = None
            if by_source is not None:
                peer_port = client_writer.get_extra_info("peername")[1]
                pid = await asyncio.to_thread(dialler_pid, peer_port, port, sources)

            def one_way() -> float:
                return sources.get(pid, round_trip_seconds) / 2 if pid is not None else round_trip_seconds / 2

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
