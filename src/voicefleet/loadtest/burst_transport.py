"""A datagram transport on a bound non-blocking UDP socket, read through the loop's public `add_reader`
up to DATAGRAMS_PER_TURN datagrams each time the socket is readable (datagram_drain.py says why).

It keeps asyncio's datagram transport's contract (asyncio.DatagramTransport): `connection_made` and
`connection_lost` on the loop's next turn, `error_received` for a send or a read the socket refused
(ICMP's port unreachable), a datagram the socket cannot take now queued and sent once it is writable,
and `close()` that sends what is queued first; `abort()` drops it."""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Any

DATAGRAMS_PER_TURN = 32  # 0.64 s of one call's audio packets: a loop turn that long still keeps up
MAX_SIZE = 256 * 1024  # asyncio's own read size for a datagram


class BurstTransport(asyncio.DatagramTransport):
    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: asyncio.DatagramProtocol):
        super().__init__({"socket": sock, "sockname": sock.getsockname(), "peername": None})
        self._loop, self._sock, self._protocol = loop, sock, protocol
        self._queued: collections.deque[tuple[bytes, Any]] = collections.deque()
        self._closing = self._ended = False
        self.made: asyncio.Future[None] = loop.create_future()  # once the protocol has its transport
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._start_reading)

    def _start_reading(self) -> None:
        if not self.made.done():
            self.made.set_result(None)
        if not self._closing:  # closed before its first turn: never read
            self._loop.add_reader(self._sock.fileno(), self._read_ready)

    def _read_ready(self) -> None:
        for _ in range(DATAGRAMS_PER_TURN):
            if self._closing:
                return
            try:
                data, addr = self._sock.recvfrom(MAX_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            self._protocol.datagram_received(data, addr)

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        if self._closing:
            return
        if not self._queued:
            try:
                self._sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._loop.add_writer(self._sock.fileno(), self._write_ready)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
        self._queued.append((bytes(data), addr))

    def _write_ready(self) -> None:
        while self._queued:
            data, addr = self._queued[0]
            try:
                self._sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
            self._queued.popleft()
        self._loop.remove_writer(self._sock.fileno())
        if self._closing:
            self._end()

    def get_write_buffer_size(self) -> int:
        return sum(len(data) for data, _ in self._queued)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._sock.fileno())
        if not self._queued:
            self._end()

    def abort(self) -> None:
        self._queued.clear()
        self.close()
        self._end()

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._loop.remove_writer(self._sock.fileno())
        self._loop.call_soon(self._lost)

    def _lost(self) -> None:
        try:
            self._protocol.connection_lost(None)
        finally:
            self._sock.close()
