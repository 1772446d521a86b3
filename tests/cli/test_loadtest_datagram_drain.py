"""A caller's loop reads every datagram waiting on a socket at once, not one a turn of the loop: a
caller whose loop turns slower than the bot's 50 packets a second must still read them as they come."""

from __future__ import annotations

import asyncio
import socket

from voicefleet.loadtest.datagram_drain import read_in_bursts


class Counted(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.append(data)


async def test_ten_waiting_datagrams_are_read_in_one_turn_of_the_loop() -> None:
    read_in_bursts()
    loop = asyncio.get_running_loop()
    transport, counted = await loop.create_datagram_endpoint(Counted, local_addr=("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        await asyncio.sleep(0)  # the transport's reader is registered
        for n in range(10):  # on loopback each is in the socket's buffer once sent
            sender.sendto(b"packet %d" % n, transport.get_extra_info("sockname"))
        await asyncio.sleep(0)  # the loop polls its sockets once, and reads what is readable
        await asyncio.sleep(0)
        assert len(counted.received) == 10, counted.received
    finally:
        sender.close()
        transport.close()
