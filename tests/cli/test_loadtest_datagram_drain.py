"""A caller's loop reads the datagrams waiting on a socket in bursts, not one a turn of the loop: a
caller whose loop turns slower than the bot's 50 packets a second must still read them as they come.
The sockets are the caller's own (BurstTransport, read through the loop's `add_reader`); asyncio's own
transport, and any loop the caller did not ask for, are left as they are."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from voicefleet.loadtest.burst_transport import DATAGRAMS_PER_TURN, BurstTransport
from voicefleet.loadtest.datagram_drain import read_in_bursts


class Counted(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.lost = 0

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost += 1


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        yield sock


async def turns(count: int) -> None:
    """`count` turns of the loop: each polls its sockets once and runs the readers of those readable."""
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_burst_of_50_waiting_datagrams_is_read_32_a_turn_by_the_callers_own_reader(
        sender: socket.socket) -> None:
    read_in_bursts()
    transport, counted = await asyncio.get_running_loop().create_datagram_endpoint(
        Counted, local_addr=("127.0.0.1", 0))
    try:
        assert isinstance(transport, BurstTransport)
        await turns(1)  # the transport's reader is registered
        for n in range(50):  # on loopback each is in the socket's buffer once sent
            sender.sendto(b"packet %d" % n, transport.get_extra_info("sockname"))
        await turns(2)  # the loop finds the socket readable, and reads a burst of it
        assert len(counted.received) == DATAGRAMS_PER_TURN == 32
        await turns(1)  # the rest on the next turn: one socket never holds the loop longer
        assert counted.received == [b"packet %d" % n for n in range(50)]
    finally:
        transport.close()


async def test_the_callers_transport_sends_and_closes_once(sender: socket.socket) -> None:
    read_in_bursts()
    transport, counted = await asyncio.get_running_loop().create_datagram_endpoint(
        Counted, local_addr=("127.0.0.1", 0))
    sender.bind(("127.0.0.1", 0))
    transport.sendto(b"to the bot", sender.getsockname())
    assert sender.recvfrom(100) == (b"to the bot", transport.get_extra_info("sockname"))
    transport.close()
    transport.close()
    await turns(2)
    assert counted.lost == 1 and transport.is_closing()
    assert transport.get_extra_info("socket").fileno() == -1


def test_a_loop_the_caller_did_not_ask_for_keeps_asyncios_own_transport() -> None:
    async def endpoint(asked: bool) -> str:
        if asked:
            read_in_bursts()
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        transport.close()
        return type(transport).__name__

    assert asyncio.run(endpoint(asked=True)) == "BurstTransport"
    assert asyncio.run(endpoint(asked=False)) == "_SelectorDatagramTransport"
