"""A load balancer in front of the replicas' bot channel, as bots see `BOT_CHANNEL_URL`: a TCP
forwarder on a loopback port that sends each new connection to the next of `targets` (ports of
live replicas; the test takes a replica out before it stops it, as a load balancer deregisters a
draining target). A connection that arrives while there is no target waits for one. When either
side closes, so does the other, so a replica's death reaches its bots as a dropped channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Iterator

CONNECT_TIMEOUT = 5.0
NO_TARGET_TIMEOUT = 60.0


class Front:
    def __init__(self) -> None:
        self.port = 0
        self._targets: list[int] = []
        self._turn = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._has_target: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="front", daemon=True)

    def route_to(self, *ports: int) -> None:
        """New connections go to these replicas from now on (open ones stay where they are)."""
        def update() -> None:
            self._targets = list(ports)
            assert self._has_target is not None
            if ports:
                self._has_target.set()
            else:
                self._has_target.clear()
        self._loop.call_soon_threadsafe(update)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._has_target = asyncio.Event()
        server = self._loop.run_until_complete(asyncio.start_server(self._forward, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()
        server.close()

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        assert self._has_target is not None
        try:
            await asyncio.wait_for(self._has_target.wait(), NO_TARGET_TIMEOUT)
            upstream = None
            for _ in range(len(self._targets)):  # the next target that answers
                port = self._targets[next(self._turn) % len(self._targets)]
                with contextlib.suppress(OSError, TimeoutError):
                    upstream = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), CONNECT_TIMEOUT)
                    break
            if upstream is None:
                return
            reader, writer = upstream
            await asyncio.gather(_pipe(client_reader, writer), _pipe(reader, client_writer))
        except TimeoutError:
            pass
        finally:
            client_writer.close()

    def __enter__(self) -> Front:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()  # the other side sees the end too


@contextlib.contextmanager
def front() -> Iterator[Front]:
    with Front() as running:
        yield running
